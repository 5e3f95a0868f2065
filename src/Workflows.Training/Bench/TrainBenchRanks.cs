using System.Text.Json;

namespace Workflows.Training.Bench;

/// <summary>
/// What one rank of <c>wf bench train --gpus N</c> measured, as it writes it for the launching process: rewritten
/// (atomically) after every context, so a group that fails at a long context still reports the shorter ones.
/// </summary>
/// <param name="PeakFlops">The matmul peak this rank measured on its own device before building the model.</param>
/// <param name="Error">Why the rank stopped early (a lost peer, a failed build), when it did.</param>
public sealed record TrainBenchRankReport(int Rank, int WorldSize, string Device, double? PeakFlops, IReadOnlyList<TrainBenchContextResult> Contexts,
    string? Error = null)
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string PathFor(string directory, int rank) => Path.Combine(directory, $"rank-{rank}.json");

    public void Write(string directory)
    {
        string path = PathFor(directory, Rank), temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, Json));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The report rank <paramref name="rank"/> left in <paramref name="directory"/>, or null when it wrote none.</summary>
    public static TrainBenchRankReport? Read(string directory, int rank)
    {
        string path = PathFor(directory, rank);
        return File.Exists(path) ? JsonSerializer.Deserialize<TrainBenchRankReport>(File.ReadAllText(path), Json) : null;
    }
}

/// <summary>
/// One context on N ranks, the group as a whole. The ranks meet in every gradient reduction, so a round lasts as
/// long as its slowest rank: the group's times are the maxima over ranks, its tokens the sum of what each rank ran.
/// </summary>
/// <param name="Tokens">Tokens the ranks ran in their timed micro-batches, summed (each rank counts its own).</param>
/// <param name="TokensPerSecond">All ranks together: Tokens / (the slowest rank's timed seconds).</param>
/// <param name="ImpliedTokensPerSecond">All ranks together, for a whole step of the settings' BatchTokens (see <see cref="TrainBenchmark.ImpliedTokensPerSecond"/>).</param>
/// <param name="DeviceMemoryUsed">The largest device memory in use of any rank (each rank has its own GPU).</param>
/// <param name="Error">Why the group has no figures at this context: a rank's error, or which ranks did not report it.</param>
/// <param name="PerRank">Each rank's own figures, by rank (null: that rank did not report this context).</param>
public sealed record TrainBenchGroupResult(int Context, int Ranks, long? Tokens, double? MicroBatchSeconds, double? TokensPerSecond,
    double? OptimizerStepSeconds, double? ImpliedTokensPerSecond, long? DeviceMemoryUsed, long? DeviceMemoryTotal, long? PeakAllocated,
    long? PeakReserved, double? FirstLoss, double? LastLoss, string? Error, IReadOnlyList<TrainBenchContextResult?> PerRank)
{
    public double? TokensPerSecondPerGpu => TokensPerSecond / Ranks;
    public double? ImpliedTokensPerSecondPerGpu => ImpliedTokensPerSecond / Ranks;

    /// <summary>
    /// The group's figures at <paramref name="context"/> from the ranks' reports (a null report: the rank wrote none,
    /// e.g. it was stopped when another failed). Figures only when every rank measured the context.
    /// </summary>
    public static TrainBenchGroupResult Combine(TrainBenchSettings settings, int context, IReadOnlyList<TrainBenchRankReport?> reports)
    {
        int ranks = reports.Count;
        var rows = reports.Select(r => r?.Contexts.FirstOrDefault(c => c.Context == context)).ToList();
        var measured = rows.OfType<TrainBenchContextResult>().Where(r => r.Error is null && r.MicroBatchSeconds is not null).ToList();
        if (measured.Count < ranks)
        {
            string error = rows.Select((r, rank) => r?.Error is { } e ? $"rank {rank}: {e}" : null).FirstOrDefault(e => e is not null)
                ?? reports.Select((r, rank) => r?.Error is { } e ? $"rank {rank}: {e}" : null).FirstOrDefault(e => e is not null)
                ?? $"rank(s) {string.Join(", ", rows.Select((r, rank) => (r, rank)).Where(x => x.r is null).Select(x => x.rank))} of {ranks} did not report this context";
            return new TrainBenchGroupResult(context, ranks, null, null, null, null, null, null, null, null, null, null, null, error, rows);
        }

        double round = measured.Max(r => r.MicroBatchSeconds!.Value);
        double optimizer = measured.Max(r => r.OptimizerStepSeconds ?? 0);
        long tokens = measured.Sum(r => r.Tokens ?? 0);
        return new TrainBenchGroupResult(context, ranks, tokens, round, tokens / (round * settings.MicroBatches), optimizer,
            TrainBenchmark.ImpliedTokensPerSecond(settings, context, ranks, round, optimizer),
            measured.Max(r => r.DeviceMemoryUsed), measured.Max(r => r.DeviceMemoryTotal), measured.Max(r => r.PeakAllocated),
            measured.Max(r => r.PeakReserved), measured[0].FirstLoss, measured[0].LastLoss, null, rows);
    }
}
