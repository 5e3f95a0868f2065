using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Workflows.Training.Native;
using static TorchSharp.torch;

namespace Workflows.Training.Distributed;

/// <summary>
/// A rank's place in a data-parallel group, from the environment <c>torchrun</c> sets (and <see cref="RankLauncher"/>
/// sets the same way): <c>RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_RANK</c>, <c>MASTER_ADDR</c>, <c>MASTER_PORT</c>.
/// </summary>
public sealed record RankEnvironment(int Rank, int WorldSize, int LocalRank, string MasterAddress, int MasterPort)
{
    /// <summary>The group this process belongs to, or null when it runs alone (no WORLD_SIZE, or 1).</summary>
    public static RankEnvironment? FromEnvironment()
    {
        static int? Int(string name) =>
            int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null;
        if (Int("WORLD_SIZE") is not { } world || world <= 1) return null;
        int rank = Int("RANK") ?? throw new InvalidOperationException("WORLD_SIZE is set but RANK is not");
        int port = Int("MASTER_PORT") ?? throw new InvalidOperationException("WORLD_SIZE is set but MASTER_PORT is not");
        if (rank < 0 || rank >= world) throw new InvalidOperationException($"RANK {rank} is outside WORLD_SIZE {world}");
        return new RankEnvironment(rank, world, Int("LOCAL_RANK") ?? rank, Environment.GetEnvironmentVariable("MASTER_ADDR") ?? "127.0.0.1", port);
    }

    /// <summary>The seconds a rank waits for the others (joining, and in each collective) before failing: WF_COLLECTIVE_TIMEOUT, default 300.</summary>
    public static TimeSpan Timeout =>
        TimeSpan.FromSeconds(double.TryParse(Environment.GetEnvironmentVariable("WF_COLLECTIVE_TIMEOUT"), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 300);

    /// <summary>This rank's device: for "cuda", the GPU of its local rank.</summary>
    public string DeviceFor(string device) =>
        device.Equals("cuda", StringComparison.OrdinalIgnoreCase) ? $"cuda:{LocalRank}" : device;

    /// <summary>
    /// Joins the group. On CPU the ranks talk over TCP through rank 0 (the test transport). On CUDA rank 0 creates
    /// NCCL's unique id, hands it to the others over that TCP connection, and every rank joins the NCCL communicator
    /// on its own GPU.
    /// </summary>
    public ICollectives Connect(string device)
    {
        // On a cluster the master's name appears in DNS only once its pod runs: retry until the deadline.
        var deadline = DateTime.UtcNow + Timeout;
        IPAddress? address = null;
        while (address is null)
        {
            try
            {
                address = Dns.GetHostAddresses(MasterAddress).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
                          ?? throw new InvalidOperationException($"MASTER_ADDR {MasterAddress} does not resolve to an IPv4 address");
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(1000);
            }
            catch (SocketException e)
            {
                throw new CollectiveFailedException($"rank {Rank}: MASTER_ADDR {MasterAddress} did not resolve within {Timeout.TotalSeconds:0} s ({e.Message})", e);
            }
        }
        var tcp = TcpCollectives.Connect(Rank, WorldSize, new IPEndPoint(address, MasterPort), Timeout);
        if (!device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase)) return tcp;
        // NCCL follows: the TCP group only hands over its unique id.
        using (tcp)
        {
            CudaRuntime.SetDevice(LocalRank);
            using var id = Rank == 0 ? tensor(NcclCollectives.NewUniqueId()) : zeros(128, ScalarType.Byte);
            tcp.Broadcast(id, 0);
            return NcclCollectives.Join(Rank, WorldSize, id.bytes.ToArray(), Timeout);
        }
    }
}

/// <summary>
/// <c>wf train --gpus N</c>: starts N rank processes of this program on this machine (what <c>torchrun
/// --nproc_per_node N</c> does), with the rendezvous environment set; rank 0's standard output is streamed, every
/// rank's standard error is streamed with its rank in front. When a rank fails, the others are stopped and the
/// launcher fails naming the rank; SIGTERM to the launcher goes to every rank (they checkpoint and stop).
/// Across machines (a Kubernetes indexed Job), each machine runs the launcher with <c>NNODES</c>, <c>NODE_RANK</c>,
/// <c>MASTER_ADDR</c> and <c>MASTER_PORT</c> set: ranks are numbered node by node.
/// </summary>
public static class RankLauncher
{
    /// <summary>How a group of ranks ended: 0, or the first rank to fail (by exit time) with the launcher's message.</summary>
    public sealed record Outcome(int ExitCode, int? FailedRank = null, string? Failure = null);

    public static int Run(IReadOnlyList<string> arguments, int ranksPerNode, TextWriter output, TextWriter error, CancellationToken cancellation) =>
        Launch(arguments, ranksPerNode, output, error, cancellation).ExitCode;

    /// <param name="environmentDefaults">Variables every rank gets unless this process's environment already sets them.</param>
    public static Outcome Launch(IReadOnlyList<string> arguments, int ranksPerNode, TextWriter output, TextWriter error, CancellationToken cancellation,
        IReadOnlyDictionary<string, string>? environmentDefaults = null)
    {
        int nodes = int.TryParse(Environment.GetEnvironmentVariable("NNODES"), out int n) && n > 0 ? n : 1;
        int node = int.TryParse(Environment.GetEnvironmentVariable("NODE_RANK"), out int r) && r >= 0 ? r : 0;
        string master = Environment.GetEnvironmentVariable("MASTER_ADDR") ?? "127.0.0.1";
        int port = int.TryParse(Environment.GetEnvironmentVariable("MASTER_PORT"), out int p) && p > 0 ? p : FreePort();
        int world = nodes * ranksPerNode;

        var (program, prefix) = Self();
        var children = new List<(int Rank, Process Process)>();
        var outputLock = new object();
        try
        {
            for (int local = 0; local < ranksPerNode; local++)
            {
                int rank = (node * ranksPerNode) + local;
                var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in prefix.Concat(arguments)) start.ArgumentList.Add(a);
                start.Environment["RANK"] = rank.ToString(CultureInfo.InvariantCulture);
                start.Environment["LOCAL_RANK"] = local.ToString(CultureInfo.InvariantCulture);
                start.Environment["WORLD_SIZE"] = world.ToString(CultureInfo.InvariantCulture);
                start.Environment["MASTER_ADDR"] = master;
                start.Environment["MASTER_PORT"] = port.ToString(CultureInfo.InvariantCulture);
                foreach (var (name, value) in environmentDefaults ?? new Dictionary<string, string>())
                    if (string.IsNullOrEmpty(start.Environment.TryGetValue(name, out var set) ? set : null)) start.Environment[name] = value;
                var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start rank {rank}");
                int shown = rank;
                process.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is null || shown != 0) return;
                    lock (outputLock) output.WriteLine(e.Data);
                };
                process.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is null) return;
                    lock (outputLock) error.WriteLine($"[rank {shown}] {e.Data}");
                };
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                children.Add((rank, process));
            }

            using var forward = cancellation.Register(() =>
            {
                foreach (var (_, child) in children)
                    if (!child.HasExited) _ = Signal(child.Id, 15); // SIGTERM: each rank checkpoints and stops
            });
            while (true)
            {
                // The first rank to fail (by exit time): the others usually fail after it, having lost their peer.
                var failed = children.Where(c => c.Process.HasExited && c.Process.ExitCode != 0).OrderBy(c => c.Process.ExitTime).FirstOrDefault();
                if (failed.Process is not null)
                {
                    // Give the others a moment to report their own view (a collective that lost its peer), then stop them.
                    Thread.Sleep(500);
                    foreach (var (_, child) in children)
                        if (!child.HasExited) child.Kill(entireProcessTree: true);
                    foreach (var (_, child) in children) child.WaitForExit();
                    string failure = $"rank {failed.Rank} of {world} exited with code {failed.Process.ExitCode}; the other ranks were stopped";
                    lock (outputLock) error.WriteLine($"error: {failure}");
                    return new Outcome(1, failed.Rank, failure);
                }
                if (children.All(c => c.Process.HasExited)) break;
                Thread.Sleep(100);
            }
            foreach (var (_, child) in children) child.WaitForExit(); // drains the output
            return new Outcome(0);
        }
        finally
        {
            foreach (var (_, child) in children)
            {
                if (!child.HasExited) child.Kill(entireProcessTree: true);
                child.Dispose();
            }
        }
    }

    // The command that starts this program again: its apphost, or `dotnet <the entry assembly>`.
    static (string Program, IReadOnlyList<string> Prefix) Self()
    {
        string process = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this process is unknown");
        string name = Path.GetFileNameWithoutExtension(process);
        if (name.Equals("dotnet", StringComparison.OrdinalIgnoreCase))
            return (process, [System.Reflection.Assembly.GetEntryAssembly()!.Location]);
        return (process, []);
    }

    static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

#pragma warning disable SYSLIB1054 // a plain kill(2); LibraryImport would need a source-generated stub for one call
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Signal(int pid, int signal);
#pragma warning restore SYSLIB1054
}
