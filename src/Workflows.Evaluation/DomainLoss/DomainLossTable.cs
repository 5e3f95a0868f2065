using System.Globalization;
using System.Text;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.DomainLoss;

/// <summary>Mean loss of one source in one document-length bucket, over <see cref="Tokens"/> target tokens.</summary>
public sealed record DomainLossEntry(string Bucket, SlimPajamaSource Source, double Loss, long Tokens);

/// <summary>Mean loss of one source at one evaluation length (Fig. 3's Loss@N), over <see cref="Tokens"/> target tokens.</summary>
public sealed record LengthLossEntry(long Length, SlimPajamaSource Source, double Loss, long Tokens);

/// <summary>All loss numbers of one run.</summary>
public sealed record DomainLossReport(string Experiment, IReadOnlyList<DomainLossEntry> Buckets, IReadOnlyList<LengthLossEntry> Lengths)
{
    /// <summary>Token-weighted Loss@N over all sources.</summary>
    public double? OverallAt(long length)
    {
        var entries = Lengths.Where(e => e.Length == length && e.Tokens > 0).ToList();
        var tokens = entries.Sum(e => e.Tokens);
        return tokens == 0 ? null : entries.Sum(e => e.Loss * e.Tokens) / tokens;
    }
}

/// <summary>Table 5's colour rule: red when Δ &gt; +0.01 (worse), green when Δ &lt; −0.01 (better), grey otherwise.</summary>
public enum DeltaMark
{
    Grey,
    Red,
    Green,
}

/// <summary>One line of the comparison: a bucket × source, ours beside the paper's.</summary>
public sealed record DomainLossRow(
    string Bucket,
    SlimPajamaSource Source,
    double Loss,
    long Tokens,
    double? BaselineLoss,
    double? Delta,
    DeltaMark? Mark,
    double? PaperOriginal,
    double? PaperDelta,
    DeltaMark? PaperMark);

/// <summary>The Table 5 comparison: rows = buckets × sources, Δ vs the baseline run, the paper's numbers beside.</summary>
public static class DomainLossTable
{
    /// <summary>|Δ| must exceed this to be coloured (the paper's caption: 0.01).</summary>
    public const double Significance = 0.01;

    public static DeltaMark MarkOf(double delta) =>
        delta > Significance ? DeltaMark.Red : delta < -Significance ? DeltaMark.Green : DeltaMark.Grey;

    /// <summary>Emoji markers render in GitHub Markdown without HTML.</summary>
    public static string Marker(DeltaMark mark) => mark switch
    {
        DeltaMark.Red => "🔴",
        DeltaMark.Green => "🟢",
        _ => "⚪",
    };

    public static IReadOnlyList<DomainLossRow> Compare(DomainLossReport run, DomainLossReport? baseline, PaperMixture? paperRow)
    {
        ArgumentNullException.ThrowIfNull(run);
        var baseLosses = baseline?.Buckets.ToDictionary(e => (e.Bucket, e.Source), e => e.Loss);
        var bucketOrder = run.Buckets.Select(e => e.Bucket).Distinct().ToList();
        return run.Buckets
            .OrderBy(e => bucketOrder.IndexOf(e.Bucket)).ThenBy(e => Array.IndexOf(TableColumns, e.Source))
            .Select(e =>
            {
                double? b = baseLosses is not null && baseLosses.TryGetValue((e.Bucket, e.Source), out var bl) ? bl : null;
                double? delta = b is { } bv ? e.Loss - bv : null;
                var paperOriginal = PaperNumbers.Table5(e.Bucket, PaperMixture.Original, e.Source);
                double? paperDelta = paperRow is { } row && row != PaperMixture.Original ? PaperNumbers.Table5(e.Bucket, row, e.Source) : null;
                return new DomainLossRow(e.Bucket, e.Source, e.Loss, e.Tokens, b, delta, delta is { } d ? MarkOf(d) : null,
                    paperOriginal, paperDelta, paperDelta is { } pd ? MarkOf(pd) : null);
            })
            .ToList();
    }

    /// <summary>GitHub Markdown table; "–" where a number does not exist.</summary>
    public static string ToMarkdown(IReadOnlyList<DomainLossRow> rows, string? baselineName, PaperMixture? paperRow)
    {
        var paperLabel = paperRow is { } r ? PaperNumbers.RowLabel[r] : "–";
        var sb = new StringBuilder();
        sb.Append("| bucket | source | loss | tokens | baseline").Append(baselineName is null ? "" : $" ({baselineName})")
          .Append(" | Δ | paper Original | paper Δ (").Append(paperLabel).AppendLine(") |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var row in rows)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {row.Bucket} | {row.Source} | {row.Loss:0.000} | {row.Tokens:N0} | ")
              .Append(row.BaselineLoss is { } b ? b.ToString("0.000", CultureInfo.InvariantCulture) : "–").Append(" | ")
              .Append(row.Delta is { } d ? $"{Marker(row.Mark!.Value)} {Signed(d)}" : "–").Append(" | ")
              .Append(row.PaperOriginal is { } po ? po.ToString("0.000", CultureInfo.InvariantCulture) : "–").Append(" | ")
              .Append(row.PaperDelta is { } pd ? $"{Marker(row.PaperMark!.Value)} {Signed(pd)}" : "–").AppendLine(" |");
        }

        sb.AppendLine().AppendLine("🔴 Δ > +0.01 (worse than baseline) · 🟢 Δ < −0.01 (better) · ⚪ within ±0.01, the paper's rule.");
        return sb.ToString();
    }

    internal static string Signed(double value) => value.ToString("+0.000;−0.000;0.000", CultureInfo.InvariantCulture);

    /// <summary>Table 5's column order: C4, CC, Stack, Arxiv, Wiki, Book, Github.</summary>
    public static IReadOnlyList<SlimPajamaSource> Table5Columns => TableColumns;

    private static readonly SlimPajamaSource[] TableColumns =
    [
        SlimPajamaSource.C4, SlimPajamaSource.CommonCrawl, SlimPajamaSource.StackExchange, SlimPajamaSource.ArXiv,
        SlimPajamaSource.Wikipedia, SlimPajamaSource.Book, SlimPajamaSource.Github,
    ];
}
