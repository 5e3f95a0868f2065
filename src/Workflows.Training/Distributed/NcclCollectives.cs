using System.Runtime.InteropServices;
using TorchSharp;
using Workflows.Training.Native;
using static TorchSharp.torch;

namespace Workflows.Training.Distributed;

/// <summary>
/// Collectives through NCCL (P/Invoke of <c>libnccl.so.2</c>, the library PyTorch and every other framework use), on
/// CUDA tensors, queued on the legacy default stream that libtorch computes on, so each collective runs after the
/// kernels that produced its input and before those that read its output. Rank 0 creates the NCCL unique id and the
/// rendezvous hands it to the others (<see cref="Rendezvous"/>).
/// <para>
/// Failures: NCCL's own message (<c>ncclGetErrorString</c>, <c>ncclGetLastError</c>) is in every exception. A rank
/// that dies leaves the others' collectives waiting forever inside a kernel, so each collective is followed by a wait
/// with a deadline (<see cref="Timeout"/>, <c>WF_COLLECTIVE_TIMEOUT</c> seconds): past it the communicator is aborted and
/// the rank fails with a clear error instead of hanging. The wait costs a host–device synchronisation per collective,
/// which for long-context steps (hundreds of milliseconds of compute per block) is noise.
/// </para>
/// <para>
/// The library: <c>WF_NCCL_LIBRARY</c> (a path) when set; else <c>libnccl.so.2</c> as already loaded by libtorch_cuda;
/// else the <c>nvidia/nccl/lib</c> folder of the Python environment next to torch's <c>lib</c> (what run.sh finds).
/// Keep NVLink multicast off where the machine asks for it (NCCL_NVLS_ENABLE=0): NCCL reads its environment itself.
/// </para>
/// </summary>
public sealed unsafe class NcclCollectives : ICollectives
{
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Bytes[128];
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int GetUniqueIdFn(out UniqueId id);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int CommInitRankFn(out nint comm, int ranks, UniqueId id, int rank);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int CommFn(nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int CommAsyncErrorFn(nint comm, out int error);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate nint ErrorStringFn(int result);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate nint LastErrorFn(nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int AllReduceFn(nint send, nint receive, nuint count, int type, int op, nint comm, nint stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int ReduceFn(nint send, nint receive, nuint count, int type, int op, int root, nint comm, nint stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int AllGatherFn(nint send, nint receive, nuint count, int type, nint comm, nint stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int BroadcastFn(nint send, nint receive, nuint count, int type, int root, nint comm, nint stream);

    sealed record Api(GetUniqueIdFn GetUniqueId, CommInitRankFn CommInitRank, CommFn CommDestroy, CommFn CommAbort,
        CommAsyncErrorFn CommGetAsyncError, ErrorStringFn GetErrorString, LastErrorFn? GetLastError,
        AllReduceFn AllReduce, ReduceFn Reduce, AllGatherFn AllGather, BroadcastFn Broadcast);

    static readonly Lazy<Api> api = new(Bind);
    const int NcclSum = 0;

    readonly nint comm;
    bool aborted;

    NcclCollectives(int rank, int worldSize, nint comm, TimeSpan timeout) => (Rank, WorldSize, this.comm, Timeout) = (rank, worldSize, comm, timeout);

    public int Rank { get; }
    public int WorldSize { get; }
    public TimeSpan Timeout { get; }

    /// <summary>
    /// The environment that keeps NVLink multicast off in NCCL, PyTorch and NVSHMEM: shared GPU hosts require it (a
    /// program using multicast can put the host's GPUs out of service). Launchers that start rank processes for a
    /// benchmark set each of these unless the caller's environment already has it.
    /// </summary>
    public static IReadOnlyDictionary<string, string> MulticastOff { get; } = new Dictionary<string, string>
    {
        ["NCCL_NVLS_ENABLE"] = "0",
        ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1",
        ["NVSHMEM_DISABLE_NVLS"] = "1",
    };

    /// <summary>A new unique id (rank 0 creates it; the rendezvous hands it to the others).</summary>
    public static byte[] NewUniqueId()
    {
        Check(api.Value.GetUniqueId(out var id), "ncclGetUniqueId");
        var bytes = new byte[128];
        for (int i = 0; i < 128; i++) bytes[i] = id.Bytes[i];
        return bytes;
    }

    /// <summary>Joins the communicator of <paramref name="worldSize"/> ranks named by <paramref name="uniqueId"/> on the current CUDA device.</summary>
    public static NcclCollectives Join(int rank, int worldSize, byte[] uniqueId, TimeSpan timeout)
    {
        if (uniqueId.Length != 128) throw new ArgumentException("an NCCL unique id is 128 bytes", nameof(uniqueId));
        var id = new UniqueId();
        for (int i = 0; i < 128; i++) id.Bytes[i] = uniqueId[i];
        Check(api.Value.CommInitRank(out var comm, worldSize, id, rank), $"ncclCommInitRank (rank {rank} of {worldSize})");
        return new NcclCollectives(rank, worldSize, comm, timeout);
    }

    static Api Bind()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("WF_NCCL_LIBRARY") is { Length: > 0 } configured) candidates.Add(configured);
        candidates.Add("libnccl.so.2");
        if (Environment.GetEnvironmentVariable("TORCH_LIB") is { Length: > 0 } torchLib)
            candidates.Add(Path.Combine(torchLib, "..", "..", "nvidia", "nccl", "lib", "libnccl.so.2"));
        foreach (var name in candidates)
        {
            if (!NativeLibrary.TryLoad(name, out var handle)) continue;
            T F<T>(string export) where T : Delegate => Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.GetExport(handle, export));
            LastErrorFn? lastError = NativeLibrary.TryGetExport(handle, "ncclGetLastError", out var le) ? Marshal.GetDelegateForFunctionPointer<LastErrorFn>(le) : null;
            return new Api(F<GetUniqueIdFn>("ncclGetUniqueId"), F<CommInitRankFn>("ncclCommInitRank"), F<CommFn>("ncclCommDestroy"),
                F<CommFn>("ncclCommAbort"), F<CommAsyncErrorFn>("ncclCommGetAsyncError"), F<ErrorStringFn>("ncclGetErrorString"), lastError,
                F<AllReduceFn>("ncclAllReduce"), F<ReduceFn>("ncclReduce"), F<AllGatherFn>("ncclAllGather"), F<BroadcastFn>("ncclBroadcast"));
        }
        throw new DllNotFoundException($"libnccl.so.2 not found (tried {string.Join(", ", candidates)}); set WF_NCCL_LIBRARY to its path");
    }

    static void Check(int result, string call, nint comm = 0)
    {
        if (result == 0) return;
        var a = api.Value;
        string message = Marshal.PtrToStringAnsi(a.GetErrorString(result)) ?? "unknown";
        string detail = a.GetLastError is { } last ? Marshal.PtrToStringAnsi(last(comm)) ?? "" : "";
        throw new CollectiveFailedException($"{call} failed: NCCL error {result} ({message}){(detail.Length > 0 ? $": {detail}" : "")}");
    }

    static int Type(ScalarType type) => type switch
    {
        ScalarType.Float32 => 7,
        ScalarType.BFloat16 => 9,
        ScalarType.Float16 => 6,
        ScalarType.Float64 => 8,
        ScalarType.Int64 => 4,
        ScalarType.Int32 => 2,
        ScalarType.Byte => 1,
        ScalarType.Int8 => 0,
        _ => throw new ArgumentException($"NCCL has no type for {type}"),
    };

    static nint Pointer(Tensor t)
    {
        if (t.device_type != DeviceType.CUDA) throw new ArgumentException("NCCL moves CUDA tensors", nameof(t));
        return TensorPointers.DataPointer(t);
    }

    public void AllReduceSum(Tensor tensor)
    {
        nint p = Pointer(tensor);
        Check(api.Value.AllReduce(p, p, (nuint)tensor.numel(), Type(tensor.dtype), NcclSum, comm, 0), "ncclAllReduce", comm);
        Wait("all-reduce");
    }

    public void ReduceSum(Tensor tensor, int root)
    {
        nint p = Pointer(tensor);
        Check(api.Value.Reduce(p, p, (nuint)tensor.numel(), Type(tensor.dtype), NcclSum, root, comm, 0), "ncclReduce", comm);
        Wait("reduce");
    }

    public void AllGather(Tensor input, Tensor output)
    {
        if (output.numel() != input.numel() * WorldSize || input.dtype != output.dtype) throw new ArgumentException("all-gather needs an output of world size × the input", nameof(output));
        Check(api.Value.AllGather(Pointer(input), Pointer(output), (nuint)input.numel(), Type(input.dtype), comm, 0), "ncclAllGather", comm);
        Wait("all-gather");
    }

    public void Broadcast(Tensor tensor, int root)
    {
        nint p = Pointer(tensor);
        Check(api.Value.Broadcast(p, p, (nuint)tensor.numel(), Type(tensor.dtype), root, comm, 0), "ncclBroadcast", comm);
        Wait("broadcast");
    }

    public void Barrier()
    {
        using var one = ones(1, ScalarType.Float32, CUDA);
        AllReduceSum(one);
    }

    // Waits for the stream with a deadline; NCCL reports a peer's failure asynchronously.
    void Wait(string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!CudaRuntime.StreamIdle(0))
        {
            Check(api.Value.CommGetAsyncError(comm, out int error), "ncclCommGetAsyncError", comm);
            if (error != 0 && error != 7 /* ncclInProgress */)
            {
                Abort();
                Check(error, $"{what} (rank {Rank})", comm);
            }
            if (DateTime.UtcNow > deadline)
            {
                Abort();
                throw new CollectiveFailedException($"rank {Rank}: {what} did not complete within {Timeout.TotalSeconds:0} s (a rank died or stopped calling collectives); the communicator was aborted");
            }
            Thread.Sleep(1);
        }
    }

    void Abort()
    {
        if (aborted) return;
        aborted = true;
        api.Value.CommAbort(comm);
    }

    public void Dispose()
    {
        if (!aborted) api.Value.CommDestroy(comm);
        aborted = true;
    }
}
