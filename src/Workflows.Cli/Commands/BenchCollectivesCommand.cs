using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Workflows.Training;
using Workflows.Training.Bench;
using Workflows.Training.Distributed;
using Workflows.Training.Native;

namespace Workflows.Cli.Commands;

/// <summary><c>wf bench collectives</c>: the data-parallel collectives, checked and timed (see <see cref="CollectivesBenchmark"/>).</summary>
public static class BenchCollectivesCommand
{
    public static Command Create(CliContext cli)
    {
        var gpus = new Option<int>("--gpus") { Description = "Ranks on this machine, one process each (as wf train --gpus N); 1: this process alone.", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "cuda (NCCL, GPU = local rank) or cpu (the TCP test transport).", DefaultValueFactory = _ => "cuda" };
        var sizes = new Option<string>("--sizes") { Description = "Comma-separated tensor sizes in MiB.", DefaultValueFactory = _ => "1,64,512" };
        var iterations = new Option<int>("--iterations") { Description = "Timed calls per operation and size.", DefaultValueFactory = _ => 20 };
        var json = new Option<bool>("--json") { Description = "Print the measurements as JSON (rank 0)." };
        var command = new Command("collectives", """
            Check and time the collectives data-parallel training uses (all-reduce, all-gather, broadcast) on float32
            tensors: every element is checked, then each call is timed; bandwidth is reported as nccl-tests reports it
            (algbw, busbw). One rank on CUDA proves the NCCL calls on a single GPU; N ranks measure the interconnect.
            Exit 1 when any result is wrong.

            Examples:
              wf bench collectives --device cuda                 # NCCL with one rank
              wf bench collectives --device cuda --gpus 8
              wf bench collectives --device cpu --gpus 2 --sizes 1 --iterations 2
            """)
        {
            gpus, device, sizes, iterations, json,
        };
        command.SetAction(parse =>
        {
            RankEnvironment? rank;
            List<long> bytes;
            try
            {
                rank = RankEnvironment.FromEnvironment();
                bytes = [.. parse.GetValue(sizes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(s => (long)(double.Parse(s, CultureInfo.InvariantCulture) * 1024 * 1024))];
                if (bytes.Count == 0 || bytes.Any(b => b <= 0)) throw new FormatException("--sizes needs positive sizes in MiB");
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            if (parse.GetValue(gpus) is > 1 and var ranks && rank is null)
            {
                return RankLauncher.Run(TrainCommand.WithoutOption(Environment.GetCommandLineArgs().Skip(1), "--gpus"), ranks, cli.Out, cli.Err, CancellationToken.None) == 0
                    ? ExitCodes.Ok : ExitCodes.InvalidInput;
            }

            string deviceName = rank?.DeviceFor(parse.GetValue(device)!) ?? parse.GetValue(device)!;
            IReadOnlyList<CollectiveMeasurement> results;
            try
            {
                var torchDevice = TorchDevice.Resolve(deviceName.Equals("cuda", StringComparison.OrdinalIgnoreCase) ? "cuda:0" : deviceName);
                using ICollectives group = rank?.Connect(deviceName) ?? (torchDevice.type == TorchSharp.DeviceType.CUDA ? JoinAlone(torchDevice.index) : SingleProcess.Instance);
                results = CollectivesBenchmark.Run(group, torchDevice, bytes, Math.Max(1, parse.GetValue(iterations)));
                if (group.Rank != 0) return results.All(m => m.Correct) ? ExitCodes.Ok : ExitCodes.InvalidInput;
            }
            catch (Exception e) when (e is CollectiveFailedException or DllNotFoundException or InvalidOperationException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {(rank is null ? "" : $"rank {rank.Rank}: ")}{e.Message}");
                return ExitCodes.InvalidInput;
            }

            if (parse.GetValue(json))
            {
                cli.Out.WriteLine(JsonSerializer.Serialize(results, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
            }
            else
            {
                cli.Out.WriteLine($"collectives on {deviceName}, {results[0].Ranks} rank(s), {Environment.ProcessorCount} CPU cores");
                cli.Out.WriteLine($"{"operation",-11} {"MiB",8} {"ok",3} {"ms/call",9} {"algbw GB/s",11} {"busbw GB/s",11}");
                foreach (var m in results)
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{m.Operation,-11} {m.Bytes / 1048576.0,8:0.##} {(m.Correct ? "yes" : "NO"),3} {m.MillisecondsPerCall,9:0.000} {m.AlgorithmGBps,11:0.00} {m.BusGBps,11:0.00}"));
            }
            return results.All(m => m.Correct) ? ExitCodes.Ok : ExitCodes.InvalidInput;
        });
        return command;
    }

    // One process, one GPU, NCCL all the same: the communicator of one rank (what proves the native calls).
    static NcclCollectives JoinAlone(int gpu)
    {
        CudaRuntime.SetDevice(Math.Max(0, gpu));
        return NcclCollectives.Join(0, 1, NcclCollectives.NewUniqueId(), RankEnvironment.Timeout);
    }
}
