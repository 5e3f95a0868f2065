using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

public static class PlanCommand
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("file") { Description = "The experiment file to plan." };
        var json = new Option<bool>("--json") { Description = "Print the plan as JSON (for scripts and the PR bot)." };
        var markdown = new Option<bool>("--markdown") { Description = "Print the plan as Markdown tables (what the PR comment shows)." };
        var stats = new Option<string?>("--corpus-stats")
        {
            Description = "Measured length statistics of the corpus ('wf corpus stats --out', or corpora/NAME.stats.json from 'wf corpus upload'). Default: corpora/<data.corpus>.stats.json in the experiment's folder or above; else the plan assumes (and says so).",
        };
        var inputs = new Option<string[]>("--input")
        {
            Description = "Run data prep's own selection on these files (tokenizing them, as data prep's measure pass) instead of forecasting: exact shares after selection.",
            AllowMultipleArgumentsPerToken = true,
        };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "With --input: path to a SentencePiece tokenizer.model (overrides data.tokenizer; or set WF_LLAMA2_TOKENIZER)." };
        var prices = new Option<string?>("--gpu-hour-price")
        {
            Description = "USD per GPU-hour, e.g. a100-80g=3.1,h100=6.5,h200=7.2 (defaults are assumed on-demand prices).",
        };
        var variant = new Option<string?>("--variant") { Description = "For a sweep file: plan this one variant (its derived name) instead of the sweep." };
        var command = new Command("plan", """
            Expand an experiment into what will happen, without running anything: tokens per source after the mix,
            each source's long-document share before and after selection and whether it can serve its budget (from the
            corpus's measured length statistics), packed sequences, optimiser steps, training FLOPs, GPU-hours and
            cost on A100-80G / H100 / H200 (calibrated on the paper's Table 2), the needle grid, and the artifacts.
            A sweep file (matrix:) shows every variant, the sweep's totals, and which steps the variants share through
            the cache and what that saves; --variant NAME shows one variant's full plan.

            Examples:
              wf plan experiments/per-source-5b-80k.yaml
              wf plan --corpus-stats corpora/slimpajama.stats.json experiments/per-source-5b-80k.yaml
              wf plan --input /data/slimpajama/train --tokenizer llama/tokenizer.model experiments/per-source-5b-80k.yaml
              wf plan --json experiments/per-source-5b-80k.yaml | jq .compute
              wf plan --markdown experiments/smoke.yaml
              wf plan experiments/paper-table3.yaml
              wf plan experiments/paper-table3.yaml --variant global-5b-80k
            """)
        {
            file, json, markdown, stats, inputs, tokenizer, prices, variant,
        };
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            // Each experiment's plan options: its corpus's statistics (--corpus-stats, else corpora/<data.corpus>.stats.json),
            // the prices, and with --input data prep's own selection for that experiment (a sweep: for each variant).
            Task<(PlanOptions? Options, int Exit)> OptionsFor(ExperimentSpec spec) => PlanOptionsAsync(cli, spec, path, parse.GetValue(stats), parse.GetValue(prices),
                parse.GetValue(inputs), parse.GetValue(tokenizer), ct);
            if (Workflows.Experiments.Matrix.SweepLoader.IsSweepFile(path))
            {
                return await Workflows.Cli.Sweeps.SweepPlanView.RunAsync(cli, path, parse.GetValue(variant), parse.GetValue(json), parse.GetValue(markdown), OptionsFor);
            }

            if (parse.GetValue(variant) is not null)
            {
                cli.Err.WriteLine($"error: --variant applies to sweep files (with matrix:); {path} is one experiment");
                return ExitCodes.Usage;
            }

            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return ExitCodes.InvalidInput;
            }

            var (options, exit) = await OptionsFor(spec);
            if (options is null)
            {
                return exit;
            }

            Print(cli, Planner.Create(spec, options), parse.GetValue(json), parse.GetValue(markdown));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>One plan as JSON, Markdown or terminal tables.</summary>
    public static void Print(CliContext cli, Plan plan, bool json, bool markdown)
    {
        if (json)
        {
            cli.Out.WriteLine(JsonSerializer.Serialize(plan, JsonOptions));
        }
        else if (markdown)
        {
            cli.Out.Write(ToMarkdown(plan));
        }
        else
        {
            Render(cli, plan);
        }
    }

    /// <summary>
    /// The plan options of one experiment, or none and the exit code after printing the error (a malformed
    /// --corpus-stats or --gpu-hour-price is a usage error; a missing or unreadable input, invalid input).
    /// </summary>
    private static async Task<(PlanOptions? Options, int Exit)> PlanOptionsAsync(CliContext cli, ExperimentSpec spec, string path, string? statsPath, string? prices,
        string[]? inputPaths, string? tokenizerPath, CancellationToken ct)
    {
        try
        {
            var statistics = statsPath is not null ? CorpusStatistics.Read(statsPath)
                : CorpusStatisticsFiles.Find(spec, path) is { } found ? CorpusStatistics.Read(found) : null;
            var options = new PlanOptions(statistics, ParsePrices(prices));
            return (inputPaths is { Length: > 0 } given ? await RunSelectionAsync(cli, spec, path, given, tokenizerPath, options, ct) : options, ExitCodes.Ok);
        }
        catch (FormatException e)
        {
            cli.Err.WriteLine($"error: {e.Message}");
            return (null, ExitCodes.Usage);
        }
        catch (Exception e) when (e is CorpusFormatException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException or InvalidOperationException)
        {
            cli.Err.WriteLine($"error: {e.Message}");
            return (null, ExitCodes.InvalidInput);
        }
    }

    /// <summary>
    /// <c>--input</c>: data prep's measure pass (lengths only) and its selection on the given files, so the plan shows
    /// what <c>wf prep</c> will select, not a forecast; the statistics of the same files give the rest of the table.
    /// </summary>
    private static async Task<PlanOptions> RunSelectionAsync(CliContext cli, ExperimentSpec spec, string path, string[] inputPaths, string? tokenizerPath,
        PlanOptions options, CancellationToken ct)
    {
        var tok = TokenizerResolver.Resolve(spec.Data.Tokenizer, tokenizerPath, Path.GetDirectoryName(Path.GetFullPath(path))!);
        var files = InputFile.Discover(inputPaths);
        if (files.Count == 0)
        {
            throw new ArgumentException("--input: no corpus files found (.jsonl.zst, .jsonl, .jsonl.gz, .parquet)");
        }

        var prepOptions = SpecMapping.ToDataPrepOptions(spec, tok);
        using var workers = new MeasureWorkers(Environment.ProcessorCount);
        var indexes = new List<LengthIndex>();
        foreach (var f in files)
        {
            var lengths = Path.Combine(Artifacts.UserFolders.Cache(), "lengths");
            indexes.Add(await Task.Run(() => CorpusMeasurer.MeasureLengthsCached(f, prepOptions.Reader, tok, workers, lengths, ct), ct));
            cli.Err.WriteLine($"lengths   {f.Key}");
        }

        var selection = DataPrepStatistics.From(SelectionPlanner.Plan(indexes, prepOptions, tok));
        var name = options.Statistics?.Name ?? (spec.Data.Paths is { Count: > 0 } ? "inputs" : spec.Data.Corpus);
        var statistics = CorpusStatistics.Merge(name, [.. indexes.Select(CorpusStatisticsBuilder.FromIndex)]);
        return options with
        {
            Statistics = statistics,
            Selection = CorpusStatisticsBuilder.Outcome(selection, $"data prep's selection run on the {files.Count} input file(s) (exact)"),
        };
    }

    private static Dictionary<GpuType, double>? ParsePrices(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var result = new Dictionary<GpuType, double>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=');
            var gpu = SpecModel.EnumValues(typeof(GpuType)).FirstOrDefault(v => kv.Length == 2 && v.Name == kv[0]);
            if (gpu.Name is null || !double.TryParse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var price))
            {
                throw new FormatException($"--gpu-hour-price: '{part}' is not GPU=PRICE (GPUs: a100-80g, h100, h200)");
            }

            result[(GpuType)gpu.Value] = price;
        }

        return result;
    }

    internal static string Tokens(long n) => PlanFormat.Tokens(n);

    private static string Bytes(long n) => n switch
    {
        >= 1L << 40 => (n / (double)(1L << 40)).ToString("0.#", CultureInfo.InvariantCulture) + " TiB",
        >= 1L << 30 => (n / (double)(1L << 30)).ToString("0.#", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (n / (double)(1L << 20)).ToString("0.#", CultureInfo.InvariantCulture) + " MiB",
        _ => (n / 1024.0).ToString("0.#", CultureInfo.InvariantCulture) + " KiB",
    };

    internal static string Pct(double x) => (x * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    internal static string N(double x, string format) => x.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>The plan as (section, rows) so the terminal table and the Markdown comment show the same numbers.</summary>
    public static IReadOnlyList<(string Title, string[] Header, List<string[]> Rows)> Sections(Plan plan)
    {
        var d = plan.Data;
        var t = plan.Training;
        var c = plan.Compute;
        var e = plan.Evaluation;
        var summary = new List<string[]>
        {
            new[] { "experiment", $"{plan.Experiment} (profile {plan.Profile}, hash {plan.ContentHash[..12]})" },
            new[] { "model", $"{plan.Model.Base}: {N(plan.Model.Parameters / 1e9, "0.###")}B parameters, {plan.Model.Layers} layers, d={plan.Model.HiddenSize}, {plan.Model.Heads} heads ({plan.Model.KvHeads} kv), RoPE {plan.Model.Rope}" },
            new[] { "data", $"{d.Corpus}, tokenizer {d.Tokenizer}, mode {d.Mode}, seed {d.Seed}, {d.Shards} shards" },
            new[] { "token budget", $"{Tokens(d.TokenBudget)} ({d.TokenBudget:N0} tokens)" },
            new[] { "context", $"{d.Context:N0} tokens" },
            new[] { "packed sequences", $"{d.PackedSequences:N0}" },
            new[] { "selection", $"budget rule {d.BudgetRule}; length distributions {d.LengthStatistics}" },
            new[] { "expected long-document share", $"{Pct(d.ExpectedLongShare)} of tokens in documents >= {SizeLiteral.Format(plan.Data.LongThreshold, SizeBase.Binary)}" + (d.ExpectedSelectedTokens is { } sel ? $"; {Tokens(sel)} tokens selected" : "") },
            new[] { "batch", $"{t.SequencesPerStep} sequences = {t.TokensPerStep:N0} tokens per step (micro-batch {t.MicroBatch} x {t.GradientAccumulation} accumulation)" },
            new[] { "optimiser steps", $"{t.Steps:N0} ({Tokens(t.TrainedTokens)} tokens trained), lr {N(t.Lr, "G")} {t.Schedule}, {t.Checkpoints} checkpoints" },
            new[] { "training FLOPs", $"{N(c.TrainingFlops, "0.00e+00")} ({N(c.FlopsPerToken, "0.00e+00")} per token, attention {Pct(c.AttentionShare)})" },
            new[] { "needle grid", e.Needle ? $"{e.NeedleLengths.Count} lengths ({e.NeedleLengths[0]:N0}..{e.NeedleLengths[^1]:N0}) x {e.NeedleDepths.Count} depths x {e.Trials} trial(s) = {e.NeedleCells} cells, {Tokens(e.NeedlePrefillTokens)} prefill tokens, scorer {e.Scorer}" : "off" },
            new[] { "domain loss", e.DomainLoss ? $"lengths {string.Join(", ", e.DomainLossLengths.Select(l => SizeLiteral.Format(l, SizeBase.Binary)))}; buckets {string.Join(", ", e.Buckets)}; {Tokens(e.DomainLossTokens)} tokens" : "off" },
        };
        var measured = d.Sources.Any(s => s.ExpectedTokens is not null);
        var overshoot = d.Sources.Any(s => s.OvershootTokens is not null);
        var paper = d.Sources.Any(s => s.PaperShare is not null);
        var sourceHeader = new List<string> { "source", "weight", "budget tokens", "long share (natural)", "long share (after selection)" };
        if (measured)
        {
            sourceHeader.AddRange(["available", "epochs needed", "expected tokens"]);
        }

        if (overshoot)
        {
            sourceHeader.Add("overshoot (paper rule)");
        }

        if (paper)
        {
            sourceHeader.Add($"paper Fig. 2 share ({d.PaperVariant})");
        }

        var sources = d.Sources.Select(s =>
        {
            var row = new List<string>
            {
                s.Source, N(s.Weight, "0.0000"), Tokens(s.Tokens), Pct(s.NaturalLongShare),
                Pct(s.ExpectedLongShare) + (s.LongShareSd is > 0.0005 ? " ± " + N(s.LongShareSd.Value * 100, "0.0") : ""),
            };
            if (measured)
            {
                row.AddRange([
                    Tokens(s.AvailableTokens ?? 0),
                    s.EpochsNeeded is { } e ? N(e, "0.##") + (e > 1.0005 ? " (short)" : "") : "-",
                    Tokens(s.ExpectedTokens ?? 0)]);
            }

            if (overshoot)
            {
                row.Add(s.OvershootTokens is { } o ? Tokens(o) : "-");
            }

            if (paper)
            {
                row.Add(s.PaperShare is { } p ? N(p, "0.000") : "-");
            }

            return row.ToArray();
        }).ToList();
        var histogramHeader = paper
            ? new[] { "length (tokens)", "ours before", "ours after", "paper Original", $"paper {d.PaperVariant}" }
            : ["length (tokens)", "ours before", "ours after"];
        var histogram = d.LengthHistogram?.Select(b => paper
            ? new[] { b.Bucket, Pct(b.Before), Pct(b.After), b.PaperOriginal is { } o ? Pct(o) : "-", b.PaperVariant is { } v ? Pct(v) : "-" }
            : [b.Bucket, Pct(b.Before), Pct(b.After)]).ToList();
        var gpus = c.Estimates.Select(g => new[]
        {
            g.Gpu + (g.Gpu == c.SelectedGpu ? " *" : ""), N(g.PeakTflops, "0"), Pct(g.AssumedMfu), N(g.GpuHours, "#,0.0"),
            N(g.WallHours / 24, "#,0.0") + $" d on {c.GpuCount}", "$" + N(g.CostUsd, "#,0"),
        }).ToList();
        var artifacts = plan.Artifacts.Select(a => new[] { a.Step, a.Artifact, a.Count.ToString("N0", CultureInfo.InvariantCulture), "~" + Bytes(a.ApproxBytes) }).ToList();
        var sections = new List<(string Title, string[] Header, List<string[]> Rows)>();
        if (plan.Memory is { } memory)
        {
            var shown = memory.Chosen ?? memory.Candidates.MinBy(m => m.Total)!;
            var rows = shown.Rows.Select(r => new[] { r.What, Bytes(r.Bytes), r.Formula }).ToList();
            rows.Add(["total per GPU", Bytes(shown.Total), $"of {Bytes(shown.DeviceBytes)} ({memory.Gpu}); a run may plan {Bytes(shown.Budget)}"]);
            if (shown.HostBytes > 0) rows.Add(["host memory for the optimizer", Bytes(shown.HostBytes), "12 B x N per GPU process"]);
            foreach (var other in memory.Candidates.Where(m => !ReferenceEquals(m, shown)))
                rows.Add([$"alternative: optimizer on {other.Placement}{(memory.GpuCount > 1 ? $", ZeRO stage {other.ZeroStage}" : "")}", Bytes(other.Total), other.Fits ? "fits" : "does not fit"]);
            rows.Add(["decision", memory.Chosen is null ? "refused" : $"optimizer on {shown.Placement}{(memory.GpuCount > 1 ? $", ZeRO stage {shown.ZeroStage}" : "")}", memory.Note]);
            sections.Add(($"GPU memory per GPU ({memory.GpuCount} x {memory.Gpu})", ["what", "bytes", "how"], rows));
        }
        return
        [
            ("Plan", ["", ""], summary),
            ("Tokens per source", sourceHeader.ToArray(), sources),
            .. histogram is null ? Array.Empty<(string, string[], List<string[]>)>() : [("Length distribution (share of tokens, Fig. 2 buckets)", histogramHeader, histogram)],
            ("Estimated GPU time (* = resources.gpu)", ["gpu", "peak TFLOP/s", "MFU", "GPU-hours", "wall time", "cost"], gpus),
            .. sections,
            ("Artifacts", ["step", "artifact", "count", "size"], artifacts),
            ("Assumptions", ["#", "assumption"], plan.Assumptions.Select((a, i) => new[] { (i + 1).ToString(CultureInfo.InvariantCulture), a }).ToList()),
        ];
    }

    private static void Render(CliContext cli, Plan plan) => RenderTables(cli, Sections(plan));

    /// <summary>Sections as terminal tables; a section titled "Plan" or "Sweep" is a two-column list without a header.</summary>
    public static void RenderTables(CliContext cli, IEnumerable<(string Title, string[] Header, List<string[]> Rows)> sections)
    {
        foreach (var (title, header, rows) in sections)
        {
            var table = new Table { Title = new TableTitle(title), Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
            if (title is "Plan" or "Sweep")
            {
                table.HideHeaders();
            }

            foreach (var h in header)
            {
                table.AddColumn(new TableColumn(Markup.Escape(h)));
            }

            foreach (var row in rows)
            {
                table.AddRow(row.Select(Markup.Escape).ToArray());
            }

            cli.Console.Write(table);
        }
    }

    public static string ToMarkdown(Plan plan) => TablesToMarkdown(Sections(plan));

    /// <summary>Sections as Markdown tables (what the PR comment shows).</summary>
    public static string TablesToMarkdown(IEnumerable<(string Title, string[] Header, List<string[]> Rows)> sections)
    {
        var sb = new StringBuilder();
        foreach (var (title, header, rows) in sections)
        {
            sb.Append("#### ").AppendLine(title).AppendLine();
            var h = title is "Plan" or "Sweep" ? ["", ""] : header;
            sb.Append("| ").AppendJoin(" | ", h).AppendLine(" |");
            sb.Append('|').AppendJoin("", h.Select(_ => "---|")).AppendLine();
            foreach (var row in rows)
            {
                // Cells hold author text (a model path, data paths): escaped like every other piece of PR text in Markdown.
                sb.Append("| ").AppendJoin(" | ", row.Select(Workflows.GitOps.Comments.Md.Text)).AppendLine(" |");
            }

            sb.AppendLine();
        }

        return sb.ToString();
    }
}
