using System.Globalization;
using System.Text;
using System.Text.Json;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Heatmaps;

namespace Workflows.Evaluation.Comparison;

/// <summary>The files of a comparison written to a folder.</summary>
public sealed record ComparisonFiles(string Markdown, string Json, IReadOnlyList<string> Images, RunComparison Comparison);

/// <summary>
/// Draws a comparison's heatmaps at the paper's size (GitHub scales images in a table down to fit side by side; a
/// smaller canvas would cut the titles, whose font size is fixed): each run's, and each run's difference against the baseline.
/// </summary>
public static class ComparisonImages
{
    public static IReadOnlyList<string> Write(string directory, RunComparison comparison, ComparisonInput input)
    {
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        var baseline = comparison.BaselineRun;
        foreach (var (run, source) in comparison.Runs.Zip(input.Runs))
        {
            if (run.Heatmap is { } heatmap)
            {
                var path = Path.Combine(directory, heatmap);
                NeedleHeatmap.Write(path, run.Needle!.Cells, new HeatmapOptions(run.Experiment, source.TrainingLength), run.Needle.Scorer);
                written.Add(path);
            }

            if (run.DifferenceHeatmap is { } difference)
            {
                var path = Path.Combine(directory, difference);
                NeedleHeatmap.WriteDifference(path, run.Needle!.Cells, baseline.Needle!.Cells,
                    new HeatmapOptions($"{run.Experiment} − baseline", source.TrainingLength), run.Needle.Scorer);
                written.Add(path);
            }
        }

        return written;
    }
}

/// <summary>Renders a comparison as GitHub Markdown and as JSON.</summary>
public static class ComparisonMarkdown
{
    private const int ImagesPerRow = 3;

    /// <summary>Builds the comparison, draws its heatmaps and writes <c>comparison.md</c> and <c>comparison.json</c> into one folder.</summary>
    public static ComparisonFiles Write(string directory, ComparisonInput input)
    {
        var comparison = Comparison.Build(input);
        var images = ComparisonImages.Write(directory, comparison, input);
        var markdown = Path.Combine(directory, "comparison.md");
        var json = Path.Combine(directory, "comparison.json");
        File.WriteAllText(markdown, Render(comparison, name => name));
        File.WriteAllText(json, JsonSerializer.Serialize(comparison, Reports.RunReport.Json));
        return new ComparisonFiles(markdown, json, images, comparison);
    }

    /// <summary>
    /// The comparison as Markdown; <paramref name="imageUrl"/> maps an image's file name to the link written (the name
    /// itself beside the files, a published URL in a PR comment), or null to leave the image out.
    /// </summary>
    public static string Render(RunComparison c, Func<string, string?> imageUrl, string headingLevel = "###")
    {
        var sb = new StringBuilder();
        var baseline = c.BaselineRun;
        string Name(ComparedRunSummary r) => $"`{r.Experiment}`{(r.IsBaseline ? " (baseline)" : "")}";

        sb.Append(CultureInfo.InvariantCulture, $"{headingLevel} Runs and the parameters that differ\n\n");
        sb.Append("| run | experiment | state |");
        foreach (var p in c.DifferingParameters)
        {
            sb.Append(' ').Append(Cell($"`{p}`")).Append(" |");
        }

        sb.Append('\n').Append("|---|---|---|").Append(string.Concat(c.DifferingParameters.Select(_ => "---|"))).Append('\n');
        foreach (var r in c.Runs)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| `{r.RunId}` | {Name(r)} | {r.State} |");
            foreach (var p in c.DifferingParameters)
            {
                sb.Append(' ').Append(Cell(r.Parameters[p])).Append(" |");
            }

            sb.Append('\n');
        }

        if (c.DifferingParameters.Count == 0)
        {
            sb.Append("\nNo setting differs between the runs (their content hashes are equal; they differ only by name).\n");
        }

        foreach (var r in c.Runs.Where(r => r.Error is not null))
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n`{r.Experiment}` {r.State}: {Cell(r.Error!)}\n");
        }

        Needle(sb, c, headingLevel, imageUrl, Name);
        Loss(sb, c, headingLevel, Name);
        sb.Append(CultureInfo.InvariantCulture, $"\nΔ = run − baseline `{baseline.Experiment}`. Loss: 🔴 Δ > +0.01 (worse than the baseline) · 🟢 Δ < −0.01 (better) · ⚪ within ±0.01, the paper's rule for Table 5.\n");
        return sb.ToString();
    }

    private static void Needle(StringBuilder sb, RunComparison c, string h, Func<string, string?> imageUrl, Func<ComparedRunSummary, string> name)
    {
        var withNeedle = c.Runs.Where(r => r.Needle is not null).ToList();
        var disabled = c.Runs.Where(r => r.NeedleDisabled).ToList();
        if (withNeedle.Count == 0)
        {
            if (disabled.Count > 0)
            {
                sb.Append(CultureInfo.InvariantCulture,
                    $"\n{h} Needle in a haystack\n\nDisabled (`evaluation.needle.enabled: false`) in {string.Join(", ", disabled.Select(name))}; no other run has needle results.\n");
            }

            return;
        }

        sb.Append(CultureInfo.InvariantCulture, $"\n{h} Needle in a haystack ({c.Scorer ?? "scorers differ"}, 0–1)\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"| experiment | mean | Δ mean | effective length (every length up to it ≥ {c.Threshold:0.###}) |\n|---|---:|---:|---|\n");
        foreach (var r in c.Runs.Where(r => r.Needle is not null || r.NeedleDisabled))
        {
            sb.Append(r.Needle is { } n
                ? string.Create(CultureInfo.InvariantCulture, $"| {name(r)} | {n.Mean:0.000} | {Signed(n.Delta)} | {n.EffectiveLengthText} |\n")
                : $"| {name(r)} | disabled | – | – |\n");
        }

        if (c.BaselineRun.NeedleDisabled)
        {
            sb.Append("\nThe baseline's needle evaluation is disabled (`evaluation.needle.enabled: false`): no Δ and no difference heatmaps.\n");
        }

        var lengths = withNeedle.SelectMany(r => r.Needle!.PerLength.Select(l => l.Length)).Distinct().Order().ToList();
        sb.Append("\nMean by context length (Δ against the baseline in brackets):\n\n| context length |");
        sb.Append(string.Concat(withNeedle.Select(r => $" {name(r)} |"))).Append("\n|---:|").Append(string.Concat(withNeedle.Select(_ => "---:|"))).Append('\n');
        foreach (var length in lengths)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {length:N0} |");
            foreach (var r in withNeedle)
            {
                var at = r.Needle!.PerLength.FirstOrDefault(l => l.Length == length);
                sb.Append(at is null ? " – |" : at.Delta is { } d ? $" {F(at.Mean)} ({Signed(d)}) |" : $" {F(at.Mean)} |");
            }

            sb.Append('\n');
        }

        var heatmaps = c.Runs.Where(r => r.Heatmap is not null && imageUrl(r.Heatmap) is not null).ToList();
        Images(sb, "Heatmaps side by side:", heatmaps.Select(r => (name(r), imageUrl(r.Heatmap!)!)).ToList());
        var differences = c.Runs.Where(r => r.DifferenceHeatmap is not null && imageUrl(r.DifferenceHeatmap) is not null).ToList();
        Images(sb, $"Difference against the baseline `{c.BaselineRun.Experiment}` per cell (green: better, red: worse):",
            differences.Select(r => ($"`{r.Experiment}` − baseline", imageUrl(r.DifferenceHeatmap!)!)).ToList());
    }

    private static void Images(StringBuilder sb, string caption, IReadOnlyList<(string Title, string Url)> images)
    {
        if (images.Count == 0)
        {
            return;
        }

        sb.Append('\n').Append(caption).Append("\n\n");
        foreach (var row in images.Chunk(ImagesPerRow))
        {
            sb.Append('|').Append(string.Concat(row.Select(i => $" {i.Title} |"))).Append('\n');
            sb.Append('|').Append(string.Concat(row.Select(_ => "---|"))).Append('\n');
            sb.Append('|').Append(string.Concat(row.Select(i => $" ![{Alt(i.Title)}]({Link(i.Url)}) |"))).Append("\n\n");
        }
    }

    private static void Loss(StringBuilder sb, RunComparison c, string h, Func<ComparedRunSummary, string> name)
    {
        var withLoss = c.Runs.Where(r => r.Loss is not null).ToList();
        if (withLoss.Count == 0)
        {
            return;
        }

        var baseline = c.BaselineRun;
        var sources = DomainLossTable.Table5Columns.Where(s => withLoss.Any(r => r.Loss!.Buckets.Any(b => b.Source == s))).ToList();
        var buckets = withLoss.SelectMany(r => r.Loss!.Buckets.Select(b => b.Bucket)).Distinct().ToList();
        sb.Append(CultureInfo.InvariantCulture, $"\n{h} Validation loss by domain and length bucket (Table 5 layout)\n\n");
        sb.Append(baseline.Loss is null
            ? "The baseline has no loss results: each run's own loss is shown.\n\n"
            : "The baseline's loss, then each run's Δ against it.\n\n");
        sb.Append("| bucket | experiment |").Append(string.Concat(sources.Select(s => $" {s} |"))).Append('\n');
        sb.Append("|---|---|").Append(string.Concat(sources.Select(_ => "---:|"))).Append('\n');
        foreach (var bucket in buckets)
        {
            foreach (var r in withLoss.OrderBy(r => r.IsBaseline ? 0 : 1))
            {
                sb.Append(CultureInfo.InvariantCulture, $"| {bucket} | {name(r)} |");
                foreach (var s in sources)
                {
                    var cell = r.Loss!.Buckets.FirstOrDefault(b => b.Bucket == bucket && b.Source == s);
                    sb.Append(cell switch
                    {
                        null => " – |",
                        { Delta: { } d, Mark: { } m } => $" {DomainLossTable.Marker(m)} {DomainLossTable.Signed(d)} |",
                        _ => $" {F(cell.Loss)} |",
                    });
                }

                sb.Append('\n');
            }
        }

        var lengths = withLoss.SelectMany(r => r.Loss!.Lengths.Select(l => l.Length)).Distinct().Order().ToList();
        if (lengths.Count == 0)
        {
            return;
        }

        sb.Append(CultureInfo.InvariantCulture, $"\nLoss@N (all sources, token-weighted; Δ against the baseline in brackets):\n\n| N |");
        sb.Append(string.Concat(withLoss.Select(r => $" {name(r)} |"))).Append("\n|---:|").Append(string.Concat(withLoss.Select(_ => "---:|"))).Append('\n');
        foreach (var n in lengths)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {n:N0} |");
            foreach (var r in withLoss)
            {
                var at = r.Loss!.Lengths.FirstOrDefault(l => l.Length == n);
                sb.Append(at switch
                {
                    null => " – |",
                    { Delta: { } d, Mark: { } m } => $" {F(at.Loss)} ({DomainLossTable.Marker(m)} {DomainLossTable.Signed(d)}) |",
                    _ => $" {F(at.Loss)} |",
                });
            }

            sb.Append('\n');
        }
    }

    private static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);

    private static string Signed(double? v) => v is { } d ? DomainLossTable.Signed(d) : "–";

    /// <summary>A table cell: pipes and line breaks would end it.</summary>
    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).Replace("\r", " ", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    private static string Alt(string text) => text.Replace("`", "", StringComparison.Ordinal).Replace("[", "(", StringComparison.Ordinal).Replace("]", ")", StringComparison.Ordinal);

    /// <summary>Brackets in a URL would end the link.</summary>
    private static string Link(string url) => url.Replace("(", "%28", StringComparison.Ordinal).Replace(")", "%29", StringComparison.Ordinal).Replace(" ", "%20", StringComparison.Ordinal);
}
