using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Heatmaps;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;

namespace Workflows.Evaluation.Reports;

/// <summary>Everything one run's report shows. Paths of images are written relative to the report folder.</summary>
/// <param name="Experiment">Experiment name (matches the paper's rows by prefix: original-, per-source-, ...).</param>
/// <param name="Baseline">Baseline experiment name, when the run is compared with one.</param>
/// <param name="Needle">This run's needle results; null: the experiment disabled the needle evaluation (the report says so
/// and has no heatmap, mean or paper comparison); empty: no needle section.</param>
/// <param name="BaselineNeedle">The baseline's needle results, for the difference heatmap.</param>
/// <param name="TrainingLength">Training context, for the heatmap's dashed line.</param>
/// <param name="TokenBudget">Training tokens, to find the paper's Fig. 3 row for per-source runs.</param>
public sealed record RunReportInput(
    string Experiment,
    string? Baseline,
    string Model,
    NeedleScoreKind Scorer,
    IReadOnlyList<NeedleResult>? Needle,
    IReadOnlyList<NeedleResult>? BaselineNeedle = null,
    DomainLossReport? Loss = null,
    DomainLossReport? BaselineLoss = null,
    long? TrainingLength = null,
    long? TokenBudget = null);

/// <summary>Where a report's results are on disk: needle results (*_results.json), loss.json files (each optional).</summary>
/// <param name="NeedleFolder">The needle results; null when the experiment disabled the needle evaluation (<c>evaluation.needle.enabled: false</c>).</param>
public sealed record ReportSources(string? NeedleFolder, string? LossFile = null, string? BaselineNeedleFolder = null, string? BaselineLossFile = null);

/// <summary>The files written.</summary>
public sealed record RunReportFiles(string Markdown, string Json, string? Heatmap, string? DifferenceHeatmap);

/// <summary>
/// Writes <c>report.md</c> (heatmap, mean needle score, per-length needle means, Table 5-style loss table, Loss@N,
/// and the paper's published numbers for the matching experiment) and <c>report.json</c> (every number shown, and
/// the per-cell needle means) into one folder. Heatmaps go beside them as PNG.
/// </summary>
public static class RunReport
{
    /// <summary>The JSON style of report.json (and comparison.json): snake_case, indented, enums kebab-case.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    /// <summary>
    /// The one entry point for the report from results on disk: <c>wf eval report</c> and the engine's report step both
    /// call it with the step's parameters and the folders the evaluations wrote (downloaded, for the engine).
    /// </summary>
    public static RunReportFiles Write(string directory, Workflows.Experiments.Templates.ReportParameters parameters, ReportSources sources) =>
        Write(directory, new RunReportInput(parameters.Experiment, parameters.Baseline, parameters.Model, NeedleScorers.FromSpec(parameters.Scorer),
            sources.NeedleFolder is { } n ? ReadNeedle(n) : null, sources.BaselineNeedleFolder is { } b ? ReadNeedle(b) : null,
            sources.LossFile is { } l ? DomainLoss.DomainLossJson.Read(l) : null, sources.BaselineLossFile is { } bl ? DomainLoss.DomainLossJson.Read(bl) : null,
            TrainingLength: parameters.TrainingContext, TokenBudget: parameters.TokenBudget));

    /// <summary>The *_results.json of a needle run; a missing or empty folder is an error naming it.</summary>
    public static IReadOnlyList<NeedleResult> ReadNeedle(string folder)
    {
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"{folder}: no such folder (expected the *_results.json of a needle evaluation)");
        }

        var results = NeedleResultFiles.ReadDirectory(folder);
        return results.Count > 0 ? results : throw new InvalidDataException($"{folder}: no *_results.json files (expected the output of a needle evaluation)");
    }

    public static RunReportFiles Write(string directory, RunReportInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Directory.CreateDirectory(directory);
        var md = new StringBuilder();
        var scorer = NeedleScorers.Name(input.Scorer);
        var paperRow = PaperNumbers.MatchExperiment(input.Experiment, out var exact);
        md.AppendLine(CultureInfo.InvariantCulture, $"# Evaluation: {input.Experiment}").AppendLine();
        var baselineNote = input.Baseline is null ? "" : $" · baseline `{input.Baseline}`";
        md.AppendLine(CultureInfo.InvariantCulture, $"Model `{input.Model}`{baselineNote}");
        if (paperRow is { } pr)
        {
            var setting = exact ? " (same setting: 7B, 5B tokens, 80K)." : " (the paper's numbers are for 7B, 5B tokens, 80K; this run differs).";
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Paper counterpart: Table 5 row **{PaperNumbers.RowLabel[pr]}**{setting}");
        }

        string? heatmap = null, difference = null;
        object? needleJson = null;
        if (input.Needle is null)
        {
            md.AppendLine().AppendLine("## Needle in a haystack").AppendLine();
            md.AppendLine("Disabled (`evaluation.needle.enabled: false`): no grid was run, so there is no heatmap, mean score, effective length, or comparison with the paper's or the baseline's needle numbers.");
            needleJson = new { state = EvaluationState.Disabled };
        }
        else if (input.Needle.Count > 0)
        {
            var cells = NeedleAggregation.ByCell(input.Needle, input.Scorer);
            var mean = NeedleAggregation.OverallMean(input.Needle, input.Scorer);
            var trials = cells.Max(c => c.Trials);
            heatmap = Path.Combine(directory, "needle-heatmap.png");
            NeedleHeatmap.Write(heatmap, cells, new HeatmapOptions($"Pressure Testing {input.Experiment}", input.TrainingLength), scorer);

            md.AppendLine().AppendLine("## Needle in a haystack").AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"Mean score (**{scorer}**, 0–1): **{mean:0.000}** = {mean * 100:0.0} % over {input.Needle.Count} results ({cells.Count} cells × up to {trials} trial(s)).");
            var summary = LongContextSummary.From(cells);
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
                $"Effective length (RULER-style: the longest length up to which every length's mean is ≥ {summary.Threshold:0.###}): **{summary.DescribeEffectiveLength()}**.");
            var haystack = HaystackOf(input.Needle);
            md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Haystack: {haystack.Name} (sha256 `{haystack.ShortHash}`).");
            var paperNeedle = PaperNeedleNumber(input);
            if (paperNeedle is { } pn && haystack.IsPaperHaystack)
            {
                md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Paper: {pn.Label}: **{pn.Value:0.0}** (its scorer is most likely visualize.py's word recall, the heatmap's; UNCERTAIN).");
            }
            else if (paperNeedle is { } skipped)
            {
                md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
                    $"Not compared with the paper ({skipped.Label}: {skipped.Value:0.0}): its numbers are for Paul Graham's essays. Set `evaluation.needle.haystack` to a local copy of them to compare (docs/evaluation.md, \"The haystack\").");
            }

            md.AppendLine().AppendLine("![needle heatmap](needle-heatmap.png)");

            var baselineCells = input.BaselineNeedle is { Count: > 0 } bn ? NeedleAggregation.ByCell(bn, input.Scorer) : null;
            if (baselineCells is not null)
            {
                difference = Path.Combine(directory, "needle-difference.png");
                NeedleHeatmap.WriteDifference(difference, cells, baselineCells, new HeatmapOptions($"{input.Experiment} − {input.Baseline}", input.TrainingLength), scorer);
                var baseMean = NeedleAggregation.OverallMean(input.BaselineNeedle!, input.Scorer);
                md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Baseline `{input.Baseline}`: {baseMean:0.000} (Δ {DomainLossTable.Signed(mean - baseMean)}).");
                md.AppendLine().AppendLine("![difference heatmap](needle-difference.png)");
            }

            md.AppendLine().AppendLine("| context length | mean | ± sd over trials (mean of cells) |").AppendLine("|---:|---:|---:|");
            foreach (var g in cells.GroupBy(c => c.ContextLength).OrderBy(g => g.Key))
            {
                md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key:N0} | {g.Average(c => c.Mean):0.000} | {g.Average(c => c.StandardDeviation):0.000} |");
            }

            needleJson = new
            {
                state = EvaluationState.Evaluated,
                scorer,
                mean,
                results = input.Needle.Count,
                means_by_scorer = Enum.GetValues<NeedleScoreKind>()
                    .Where(k => input.Needle.All(r => r.Scores.ContainsKey(NeedleScorers.Name(k))))
                    .ToDictionary(NeedleScorers.Name, k => NeedleAggregation.OverallMean(input.Needle, k)),
                baseline_mean = input.BaselineNeedle is { Count: > 0 } ? NeedleAggregation.OverallMean(input.BaselineNeedle, input.Scorer) : (double?)null,
                haystack = new { sha256 = haystack.Sha256, name = haystack.Name, paper_haystack = haystack.IsPaperHaystack },
                paper = paperNeedle is { } p && haystack.IsPaperHaystack ? new { label = p.Label, value = p.Value } : null,
                per_length = summary.PerLength,
                effective_length = summary.EffectiveLength,
                effective_length_threshold = summary.Threshold,
                cells,
            };
        }

        object? lossJson = null;
        if (input.Loss is { } loss)
        {
            var rows = DomainLossTable.Compare(loss, input.BaselineLoss, paperRow);
            md.AppendLine().AppendLine("## Validation loss by domain and length bucket (Table 5)").AppendLine();
            md.Append(DomainLossTable.ToMarkdown(rows, input.Baseline, paperRow));
            if (paperRow == PaperMixture.BookUp)
            {
                md.AppendLine().AppendLine(PaperNumbers.Table5Footnote);
            }

            var lengths = loss.Lengths.Select(e => e.Length).Distinct().Order().ToList();
            var fig = PaperLossRow(input, paperRow);
            if (lengths.Count > 0)
            {
                md.AppendLine().AppendLine("## Loss@N (Fig. 3)").AppendLine();
                md.AppendLine("| N | loss (all sources, token-weighted) | baseline | paper |").AppendLine("|---:|---:|---:|---:|");
                foreach (var n in lengths)
                {
                    var ours = loss.OverallAt(n);
                    var theirs = input.BaselineLoss?.OverallAt(n);
                    var paperIndex = PaperNumbers.LossLengths.ToList().IndexOf(n);
                    var paperValue = fig is not null && paperIndex >= 0 ? fig.Value.Values[paperIndex].ToString("0.00", CultureInfo.InvariantCulture) : "–";
                    md.AppendLine(CultureInfo.InvariantCulture, $"| {n:N0} | {Format(ours)} | {Format(theirs)} | {paperValue} |");
                }

                if (fig is not null)
                {
                    md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Paper column: {fig.Value.Label}.");
                }
            }

            lossJson = new
            {
                rows,
                lengths = loss.Lengths,
                overall_at = lengths.ToDictionary(n => n.ToString(CultureInfo.InvariantCulture), loss.OverallAt),
                paper_row = paperRow is { } r ? PaperNumbers.RowLabel[r] : null,
                paper_lengths = fig is { } f ? new { label = f.Label, lengths = PaperNumbers.LossLengths, values = f.Values } : null,
            };
        }

        var markdownPath = Path.Combine(directory, "report.md");
        var jsonPath = Path.Combine(directory, "report.json");
        File.WriteAllText(markdownPath, md.ToString());
        File.WriteAllText(jsonPath, JsonSerializer.Serialize(new
        {
            experiment = input.Experiment,
            baseline = input.Baseline,
            model = input.Model,
            paper_row = paperRow is { } row ? PaperNumbers.RowLabel[row] : null,
            paper_row_exact = exact,
            needle = needleJson,
            loss = lossJson,
        }, Json));
        return new RunReportFiles(markdownPath, jsonPath, heatmap, difference);
    }

    /// <summary>The haystack every result names; results that disagree (a grid resumed over another haystack) are reported as such.</summary>
    private static HaystackIdentity HaystackOf(IReadOnlyList<NeedleResult> results)
    {
        var hashes = results.Select(r => r.Haystack).Distinct(StringComparer.Ordinal).ToList();
        return hashes.Count == 1
            ? KnownHaystacks.Identify(hashes[0])
            : new HaystackIdentity(string.Join(",", hashes.Select(h => h.Length >= 12 ? h[..12] : h)), $"mixed: results from {hashes.Count} different haystacks", false);
    }

    private static string Format(double? v) => v is { } x ? x.ToString("0.000", CultureInfo.InvariantCulture) : "–";

    private static (string Label, double Value)? PaperNeedleNumber(RunReportInput input)
    {
        var row = PaperNumbers.MatchExperiment(input.Experiment, out _);
        if (row == PaperMixture.PerSource && input.TokenBudget is { } tokens && PaperNumbers.Figure3.TryGetValue(tokens, out var f))
        {
            return ($"Fig. 3, per-source, {tokens / 1e9:0.#}B tokens, 7B at 80K", f.NeedleAccuracy);
        }

        return null;
    }

    private static (string Label, double[] Values)? PaperLossRow(RunReportInput input, PaperMixture? row)
    {
        if (row == PaperMixture.PerSource && input.TokenBudget is { } tokens && PaperNumbers.Figure3.TryGetValue(tokens, out var f))
        {
            return ($"Fig. 3, per-source, {tokens / 1e9:0.#}B tokens, 7B at 80K", f.Loss);
        }

        if (row == PaperMixture.Original)
        {
            return ("Fig. 4, original mixture, 5B tokens, 7B at 80K", PaperNumbers.Figure4Original);
        }

        return null;
    }
}
