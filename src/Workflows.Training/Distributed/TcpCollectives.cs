using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using TorchSharp;
using Workflows.Training.Native;
using static TorchSharp.torch;

namespace Workflows.Training.Distributed;

/// <summary>
/// Collectives between processes over TCP, for CPU tensors. <b>This is the test transport</b>: it lets CI run
/// data-parallel training with 2–3 rank processes on a machine without GPUs, so everything above the transport
/// (sharding, data split, checkpoints, failure handling) is tested; it is not a product path (NCCL is, see
/// <see cref="NcclCollectives"/>). Rank 0 is the hub: the others connect to it at the rendezvous address, every
/// reduction is summed there in rank order (so results are deterministic) and sent back. Each message carries the
/// operation and its length, so ranks that call different collectives fail with a clear error instead of mixing
/// bytes; a rank that dies closes its socket and every other rank fails within the timeout.
/// </summary>
public sealed unsafe class TcpCollectives : ICollectives
{
    enum Op : byte { AllReduce = 1, Reduce, AllGather, Broadcast, Barrier }

    readonly Socket[] peers;   // rank 0: peers[r] for r ≥ 1; others: peers[0] = the hub

    TcpCollectives(int rank, int worldSize, Socket[] peers) => (Rank, WorldSize, this.peers) = (rank, worldSize, peers);

    public int Rank { get; }
    public int WorldSize { get; }

    /// <summary>Connects the group: rank 0 listens on <paramref name="endpoint"/>, the others connect (retrying until <paramref name="timeout"/>).</summary>
    public static TcpCollectives Connect(int rank, int worldSize, IPEndPoint endpoint, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank));
        var deadline = DateTime.UtcNow + timeout;
        var peers = new Socket[worldSize];
        Span<byte> hello = stackalloc byte[8];
        if (rank == 0)
        {
            using var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(endpoint);
            listener.Listen(worldSize);
            for (int joined = 1; joined < worldSize; joined++)
            {
                if (!listener.Poll((int)Math.Max(0, (deadline - DateTime.UtcNow).TotalMicroseconds), SelectMode.SelectRead))
                    throw new CollectiveFailedException($"rank 0: only {joined - 1} of {worldSize - 1} ranks connected to {endpoint} within {timeout.TotalSeconds:0} s");
                var socket = listener.Accept();
                Configure(socket, timeout);
                ReceiveExactly(socket, hello, "a joining rank");
                int peerRank = BinaryPrimitives.ReadInt32LittleEndian(hello), peerWorld = BinaryPrimitives.ReadInt32LittleEndian(hello[4..]);
                if (peerWorld != worldSize || peerRank <= 0 || peerRank >= worldSize || peers[peerRank] is not null)
                    throw new CollectiveFailedException($"rank 0: a process joined as rank {peerRank} of {peerWorld}, the group is {worldSize} ranks");
                peers[peerRank] = socket;
            }
        }
        else
        {
            while (true)
            {
                var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.Connect(endpoint);
                    Configure(socket, timeout);
                    BinaryPrimitives.WriteInt32LittleEndian(hello, rank);
                    BinaryPrimitives.WriteInt32LittleEndian(hello[4..], worldSize);
                    socket.Send(hello);
                    peers[0] = socket;
                    break;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline)
                {
                    socket.Dispose();
                    Thread.Sleep(50);
                }
                catch (SocketException e)
                {
                    socket.Dispose();
                    throw new CollectiveFailedException($"rank {rank}: could not reach rank 0 at {endpoint} within {timeout.TotalSeconds:0} s: {e.Message}", e);
                }
            }
        }
        return new TcpCollectives(rank, worldSize, peers);
    }

    static void Configure(Socket socket, TimeSpan timeout)
    {
        socket.NoDelay = true;
        socket.ReceiveTimeout = socket.SendTimeout = (int)timeout.TotalMilliseconds;
    }

    public void AllReduceSum(Tensor tensor) => Reduce(tensor, root: -1, Op.AllReduce);

    public void ReduceSum(Tensor tensor, int root) => Reduce(tensor, root, Op.Reduce);

    // Everyone sends to rank 0, which sums in rank order; the result goes back to everyone (root −1) or to the root.
    void Reduce(Tensor tensor, int root, Op op)
    {
        var bytes = Bytes(tensor, requireSummable: true);
        if (Rank == 0)
        {
            var incoming = new byte[bytes.Length];
            for (int r = 1; r < WorldSize; r++)
            {
                Receive(r, op, incoming);
                Add(tensor.dtype, bytes, incoming);
            }
            for (int r = 1; r < WorldSize; r++)
                if (root < 0 || root == r) Send(r, op, bytes);
        }
        else
        {
            Send(0, op, bytes);
            if (root < 0 || root == Rank) Receive(0, op, bytes);
        }
    }

    public void AllGather(Tensor input, Tensor output)
    {
        var outputBytes = Bytes(output, requireSummable: false);
        int chunk = outputBytes.Length / WorldSize;
        if (chunk * WorldSize != outputBytes.Length || input.numel() * input.element_size() != chunk)
            throw new ArgumentException("all-gather needs an output of world size × the input", nameof(output));
        var mine = Bytes(input, requireSummable: false);
        mine.CopyTo(outputBytes.Slice(Rank * chunk, chunk)); // in place when the input is our own slice
        if (Rank == 0)
        {
            for (int r = 1; r < WorldSize; r++) Receive(r, Op.AllGather, outputBytes.Slice(r * chunk, chunk));
            for (int r = 1; r < WorldSize; r++) Send(r, Op.AllGather, outputBytes);
        }
        else
        {
            Send(0, Op.AllGather, mine);
            Receive(0, Op.AllGather, outputBytes);
        }
    }

    public void Broadcast(Tensor tensor, int root)
    {
        var bytes = Bytes(tensor, requireSummable: false);
        if (Rank == 0)
        {
            if (root != 0) Receive(root, Op.Broadcast, bytes);
            for (int r = 1; r < WorldSize; r++)
                if (r != root) Send(r, Op.Broadcast, bytes);
        }
        else if (Rank == root)
        {
            Send(0, Op.Broadcast, bytes);
        }
        else
        {
            Receive(0, Op.Broadcast, bytes);
        }
    }

    public void Barrier()
    {
        Span<byte> none = [];
        if (Rank == 0)
        {
            for (int r = 1; r < WorldSize; r++) Receive(r, Op.Barrier, none);
            for (int r = 1; r < WorldSize; r++) Send(r, Op.Barrier, none);
        }
        else
        {
            Send(0, Op.Barrier, none);
            Receive(0, Op.Barrier, none);
        }
    }

    static Span<byte> Bytes(Tensor tensor, bool requireSummable)
    {
        if (tensor.device_type != DeviceType.CPU) throw new ArgumentException("the TCP transport moves CPU tensors only", nameof(tensor));
        if (requireSummable && tensor.dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"sums over {tensor.dtype} are not supported by the TCP transport", nameof(tensor));
        long length = tensor.numel() * tensor.element_size();
        return new Span<byte>((void*)TensorPointers.DataPointer(tensor), checked((int)length));
    }

    static void Add(ScalarType type, Span<byte> into, ReadOnlySpan<byte> values)
    {
        if (type == ScalarType.Float32)
        {
            var a = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(into);
            var b = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(values);
            for (int i = 0; i < a.Length; i++) a[i] += b[i];
        }
        else
        {
            var a = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(into);
            var b = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(values);
            for (int i = 0; i < a.Length; i++) a[i] += b[i];
        }
    }

    void Send(int peer, Op op, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[9];
        header[0] = (byte)op;
        BinaryPrimitives.WriteInt64LittleEndian(header[1..], payload.Length);
        try
        {
            SendAll(peers[peer], header);
            SendAll(peers[peer], payload);
        }
        catch (SocketException e)
        {
            throw Lost(peer, op, e);
        }
    }

    void Receive(int peer, Op op, Span<byte> payload)
    {
        Span<byte> header = stackalloc byte[9];
        ReceiveExactly(peers[peer], header, Describe(peer), this, op);
        if ((Op)header[0] != op || BinaryPrimitives.ReadInt64LittleEndian(header[1..]) != payload.Length)
            throw new CollectiveFailedException($"rank {Rank}: {Describe(peer)} called {(Op)header[0]} of {BinaryPrimitives.ReadInt64LittleEndian(header[1..]):N0} bytes where this rank called {op} of {payload.Length:N0}: the ranks diverged");
        ReceiveExactly(peers[peer], payload, Describe(peer), this, op);
    }

    string Describe(int peer) => Rank == 0 ? $"rank {peer}" : "rank 0";

    CollectiveFailedException Lost(int peer, Op op, Exception e) =>
        new($"rank {Rank}: {Describe(peer)} stopped answering during {op} ({e.Message}); the group cannot go on", e);

    static void SendAll(Socket socket, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty) data = data[socket.Send(data)..];
    }

    static void ReceiveExactly(Socket socket, Span<byte> data, string who, TcpCollectives? owner = null, Op op = 0)
    {
        try
        {
            while (!data.IsEmpty)
            {
                int n = socket.Receive(data);
                if (n == 0) throw new CollectiveFailedException($"{(owner is null ? "" : $"rank {owner.Rank}: ")}{who} closed its connection{(op == 0 ? "" : $" during {op}")} (the process ended or failed); the group cannot go on");
                data = data[n..];
            }
        }
        catch (SocketException e)
        {
            throw new CollectiveFailedException($"{(owner is null ? "" : $"rank {owner.Rank}: ")}{who} did not answer{(op == 0 ? "" : $" during {op}")} within the timeout ({e.SocketErrorCode}); the group cannot go on", e);
        }
    }

    public void Dispose()
    {
        foreach (var socket in peers) socket?.Dispose();
    }
}
