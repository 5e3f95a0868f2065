using System.Runtime.InteropServices;
using Workflows.Training;
using Workflows.Training.Bench;
using Workflows.Training.Distributed;

namespace Workflows.Cli.Commands;

/// <summary>
/// One rank of <c>wf bench train --gpus N</c> (the hidden <c>--rank-results FOLDER</c>): joins the group from the
/// environment <see cref="RankLauncher"/> set (alone when WORLD_SIZE is unset or 1: the 1-GPU run), measures the
/// matmul peak on its own device, runs our side of the benchmark with the data-parallel trainer and writes its
/// figures (<see cref="TrainBenchRankReport"/>) after every context. Progress goes to stderr, which the launcher
/// prefixes with the rank. Exit 1 when a context or the group failed: the launcher then stops the other ranks.
/// </summary>
internal static class BenchTrainRank
{
    public static int Run(CliContext cli, BenchShape s, TrainBenchSettings settings, string folder)
    {
        RankEnvironment? rank;
        try
        {
            rank = RankEnvironment.FromEnvironment();
        }
        catch (InvalidOperationException e)
        {
            cli.Err.WriteLine($"error: {e.Message}");
            return ExitCodes.InvalidInput;
        }

        int r = rank?.Rank ?? 0, world = rank?.WorldSize ?? 1;
        string device = rank?.DeviceFor(settings.Device) ?? settings.Device;
        var results = new List<TrainBenchContextResult>();
        double? peak = null;
        void Write(string? error = null) => new TrainBenchRankReport(r, world, device, peak, results, error).Write(folder);
        try
        {
            if (s.Threads > 0) TorchSharp.torch.set_num_threads(s.Threads);
            using var group = rank?.Connect(device);
            peak = BenchModels.MatmulPeak(TorchDevice.Resolve(device), s.PeakSize, s.PeakIterations, s.PeakType);
            Write();
            TrainBenchmark.Run(settings with { Device = device }, cli.Err, group, result =>
            {
                results.Add(result);
                Write();
            });
            return results.Any(x => x.Error is not null) ? ExitCodes.InvalidInput : ExitCodes.Ok;
        }
        catch (Exception e) when (e is CollectiveFailedException or ArgumentException or InvalidOperationException or ExternalException
                                       or DllNotFoundException or OutOfMemoryException or IOException)
        {
            string message = e.Message.Split('\n', 2)[0].Trim();
            Write(message);
            cli.Err.WriteLine($"error: rank {r} of {world}: {message}");
            return ExitCodes.InvalidInput;
        }
    }
}
