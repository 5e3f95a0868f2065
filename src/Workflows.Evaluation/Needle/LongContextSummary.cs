using System.Globalization;

namespace Workflows.Evaluation.Needle;

/// <summary>The mean needle score at one context length: over its cells (depths), each cell the mean of its trials.</summary>
public sealed record LengthMean(long Length, double Mean, int Cells);

/// <summary>
/// Long-context summary metrics of a needle grid: the mean at every evaluated length, and the <b>effective length</b>
/// as RULER reports it against a threshold: the longest evaluated length L such that the mean stays at or above the
/// threshold at every length up to L (null when the shortest length is already below it). "Stays" is the
/// conservative reading: a length that passes after a failing one does not count, so a dip is not hidden by a
/// recovery further out.
/// </summary>
public sealed record LongContextSummary(IReadOnlyList<LengthMean> PerLength, double Threshold, long? EffectiveLength)
{
    /// <summary>
    /// RULER's threshold: Llama-2-7B's own score at 4K, 85.6 (as 0.856 of the 0–1 score). The paper's word-recall tops
    /// out at 11/12 = 0.917, so the threshold is reachable with it; with rouge1 (0.727 for a perfect answer) it is not:
    /// pass another threshold (<c>wf compare --threshold</c>).
    /// </summary>
    public const double DefaultThreshold = 0.856;

    public static LongContextSummary From(IReadOnlyList<NeedleCellSummary> cells, double threshold = DefaultThreshold)
    {
        var perLength = cells.GroupBy(c => c.ContextLength).OrderBy(g => g.Key)
            .Select(g => new LengthMean(g.Key, g.Average(c => c.Mean), g.Count()))
            .ToList();
        long? effective = null;
        foreach (var length in perLength)
        {
            if (length.Mean < threshold)
            {
                break;
            }

            effective = length.Length;
        }

        return new LongContextSummary(perLength, threshold, effective);
    }

    /// <summary>"43,333 tokens", or why there is none ("none: 0.412 at 1,000 < 0.856").</summary>
    public string DescribeEffectiveLength()
    {
        if (EffectiveLength is { } e)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{e:N0} tokens");
        }

        return PerLength.Count == 0
            ? "none (no needle results)"
            : string.Create(CultureInfo.InvariantCulture, $"none: {PerLength[0].Mean:0.000} at {PerLength[0].Length:N0} < {Threshold:0.###}");
    }
}
