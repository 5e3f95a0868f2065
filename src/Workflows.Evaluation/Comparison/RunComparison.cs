using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Comparison;

/// <summary>
/// One run as a comparison sees it: who it is, its settings as flat dotted paths (every field of the experiment, values
/// as canonical JSON), and its raw evaluation results. A run that did not succeed comes with its state and error and no
/// results.
/// </summary>
/// <param name="NeedleDisabled">The run's experiment set <c>evaluation.needle.enabled: false</c>: it has no needle results by design.</param>
public sealed record ComparedRun(
    string RunId,
    string Experiment,
    string State,
    IReadOnlyDictionary<string, string> Parameters,
    NeedleScoreKind Scorer,
    IReadOnlyList<NeedleResult> Needle,
    DomainLossReport? Loss,
    long? TrainingLength,
    string? Error = null,
    bool NeedleDisabled = false)
{
    public bool Succeeded => State == "succeeded";
}

/// <param name="Title">What is compared, e.g. "sweep smoke-sweep".</param>
/// <param name="Baseline">Run id of the baseline among <paramref name="Runs"/>; null: <see cref="Comparison.DefaultBaseline"/>.</param>
public sealed record ComparisonInput(string Title, IReadOnlyList<ComparedRun> Runs, string? Baseline = null, double Threshold = LongContextSummary.DefaultThreshold);

/// <summary>Mean at one length, and its difference from the baseline's mean at that length.</summary>
public sealed record LengthComparison(long Length, double Mean, double? Delta);

/// <summary>A run's needle numbers: the overall mean (as the report computes it), per-length means, the effective length.</summary>
public sealed record NeedleComparison(
    string Scorer,
    int Results,
    double Mean,
    double? Delta,
    IReadOnlyList<LengthComparison> PerLength,
    long? EffectiveLength,
    string EffectiveLengthText,
    IReadOnlyList<NeedleCellSummary> Cells);

/// <summary>One bucket × source cell of the Table 5 layout: the run's loss and its Δ against the baseline with the paper's mark.</summary>
public sealed record LossCellComparison(string Bucket, SlimPajamaSource Source, double Loss, long Tokens, double? Delta, DeltaMark? Mark);

/// <summary>Loss@N over all sources (token-weighted) and its Δ against the baseline with the paper's mark.</summary>
public sealed record LossAtComparison(long Length, double Loss, double? Delta, DeltaMark? Mark);

public sealed record LossComparison(IReadOnlyList<LossCellComparison> Buckets, IReadOnlyList<LossAtComparison> Lengths);

/// <summary>One row of the comparison: a run with only the parameters that differ among the runs, and its numbers.</summary>
/// <param name="NeedleDisabled">The run disabled the needle evaluation (then <paramref name="Needle"/> is null and shown as "disabled", not as missing).</param>
public sealed record ComparedRunSummary(
    string RunId,
    string Experiment,
    string State,
    bool IsBaseline,
    IReadOnlyDictionary<string, string> Parameters,
    NeedleComparison? Needle,
    LossComparison? Loss,
    string? Error,
    string? Heatmap,
    string? DifferenceHeatmap,
    bool NeedleDisabled = false);

/// <summary>Everything a comparison shows; <see cref="ComparisonImages"/> draws its heatmaps, <see cref="ComparisonMarkdown"/> renders it.</summary>
public sealed record RunComparison(
    string Title,
    string Baseline,
    double Threshold,
    string? Scorer,
    IReadOnlyList<string> DifferingParameters,
    IReadOnlyList<ComparedRunSummary> Runs)
{
    public ComparedRunSummary BaselineRun => Runs.First(r => r.IsBaseline);
}

/// <summary>
/// Compares runs (a sweep's variants, or any runs) against a baseline: the parameters that differ (only those), needle
/// means overall and per length with the effective length, Δ against the baseline's, and the Table 5 layout of loss by
/// domain and length bucket with the paper's colour rule (🔴 Δ &gt; +0.01, 🟢 Δ &lt; −0.01). Every number is computed
/// from the runs' raw results the same way the run report computes it, so a comparison and the runs' own reports agree.
/// </summary>
public static class Comparison
{
    /// <summary>Settings never compared: the name (each run shows its own) and the free-text description.</summary>
    private static readonly HashSet<string> Ignored = ["name", "description"];

    public static RunComparison Build(ComparisonInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Runs.Count == 0)
        {
            throw new ArgumentException("nothing to compare: no runs", nameof(input));
        }

        var wanted = input.Baseline ?? DefaultBaseline(input.Runs);
        var baseline = input.Runs.FirstOrDefault(r => r.RunId == wanted)
            ?? throw new ArgumentException($"baseline '{wanted}' is not one of the compared runs", nameof(input));
        var differing = DifferingParameters(input.Runs);
        var scorer = input.Runs.Where(r => r.Needle.Count > 0).Select(r => r.Scorer).Distinct().ToList();
        var baseNeedle = NeedleOf(baseline, input.Threshold, null);
        var rows = input.Runs.Select((run, i) =>
        {
            var isBaseline = ReferenceEquals(run, baseline);
            var needle = NeedleOf(run, input.Threshold, isBaseline ? null : baseNeedle);
            var hasCells = needle is { Cells.Count: > 0 };
            return new ComparedRunSummary(
                run.RunId,
                run.Experiment,
                run.State,
                isBaseline,
                differing.ToDictionary(p => p, p => run.Parameters.GetValueOrDefault(p) ?? "–", StringComparer.Ordinal),
                needle,
                LossOf(run, isBaseline ? null : baseline.Loss),
                run.Error,
                hasCells ? ImageName("heatmap", i) : null,
                hasCells && !isBaseline && baseNeedle is { Cells.Count: > 0 } ? ImageName("difference", i) : null,
                run.NeedleDisabled);
        }).ToList();
        return new RunComparison(input.Title, baseline.RunId, input.Threshold,
            scorer.Count == 1 ? NeedleScorers.Name(scorer[0]) : null, differing, rows);
    }

    /// <summary>Image file names, stable per position: the Markdown links them, a publisher maps them to URLs.</summary>
    public static string ImageName(string kind, int index) => $"{kind}-{index + 1:00}.png";

    /// <summary>
    /// Dotted paths whose values are not the same in every run (a path a run lacks counts as different); a run with no
    /// recorded settings (a variant never submitted) takes no part.
    /// </summary>
    public static IReadOnlyList<string> DifferingParameters(IReadOnlyList<ComparedRun> runs)
    {
        var known = runs.Where(r => r.Parameters.Count > 0).ToList();
        return known.SelectMany(r => r.Parameters.Keys).Distinct(StringComparer.Ordinal)
            .Where(p => !Ignored.Contains(p))
            .Where(p => known.Select(r => r.Parameters.GetValueOrDefault(p)).Distinct(StringComparer.Ordinal).Count() > 1)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// The baseline when none is asked for: the run whose experiment another run names as its <c>gitops.baseline</c>
    /// (a sweep of the paper's table names its 'original' variant), else the first run.
    /// </summary>
    public static string DefaultBaseline(IReadOnlyList<ComparedRun> runs)
    {
        var named = runs.Select(r => r.Parameters.GetValueOrDefault("gitops.baseline")).OfType<string>().ToHashSet(StringComparer.Ordinal);
        return (runs.FirstOrDefault(r => named.Contains(r.Experiment)) ?? runs[0]).RunId;
    }

    private static NeedleComparison? NeedleOf(ComparedRun run, double threshold, NeedleComparison? baseline)
    {
        if (run.NeedleDisabled || run.Needle.Count == 0)
        {
            return null;
        }

        var cells = NeedleAggregation.ByCell(run.Needle, run.Scorer);
        var mean = NeedleAggregation.OverallMean(run.Needle, run.Scorer);
        var summary = LongContextSummary.From(cells, threshold);
        var perLength = summary.PerLength.Select(l => new LengthComparison(l.Length, l.Mean,
            baseline?.PerLength.FirstOrDefault(b => b.Length == l.Length) is { } b ? l.Mean - b.Mean : null)).ToList();
        return new NeedleComparison(NeedleScorers.Name(run.Scorer), run.Needle.Count, mean, baseline is null ? null : mean - baseline.Mean,
            perLength, summary.EffectiveLength, summary.DescribeEffectiveLength(), cells);
    }

    private static LossComparison? LossOf(ComparedRun run, DomainLossReport? baseline)
    {
        if (run.Loss is not { } loss)
        {
            return null;
        }

        var baseCells = baseline?.Buckets.ToDictionary(e => (e.Bucket, e.Source), e => e.Loss);
        var buckets = loss.Buckets.Select(e =>
        {
            double? delta = baseCells is not null && baseCells.TryGetValue((e.Bucket, e.Source), out var b) ? e.Loss - b : null;
            return new LossCellComparison(e.Bucket, e.Source, e.Loss, e.Tokens, delta, delta is { } d ? DomainLossTable.MarkOf(d) : null);
        }).ToList();
        var lengths = loss.Lengths.Select(e => e.Length).Distinct().Order()
            .Where(n => loss.OverallAt(n) is not null)
            .Select(n =>
            {
                var value = loss.OverallAt(n)!.Value;
                double? delta = baseline?.OverallAt(n) is { } b ? value - b : null;
                return new LossAtComparison(n, value, delta, delta is { } d ? DomainLossTable.MarkOf(d) : null);
            }).ToList();
        return new LossComparison(buckets, lengths);
    }
}
