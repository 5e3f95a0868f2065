using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;
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
            Description = "JSON with measured long-token shares per source ({\"name\": ..., \"long_token_share\": {\"Book\": 0.99, ...}}); default: the paper's Fig. 2 share for every source.",
        };
        var prices = new Option<string?>("--gpu-hour-price")
        {
            Description = "USD per GPU-hour, e.g. a100-80g=3.1,h100=6.5,h200=7.2 (defaults are assumed on-demand prices).",
        };
        var command = new Command("plan", """
            Expand an experiment into what will happen, without running anything: tokens per source after the mix,
            expected long-document share, packed sequences, optimiser steps, training FLOPs, GPU-hours and cost on
            A100-80G / H100 / H200 (calibrated on the paper's Table 2), the needle grid, and the artifacts written.

            Examples:
              wf plan experiments/per-source-5b-80k.yaml
              wf plan --json experiments/per-source-5b-80k.yaml | jq .compute
              wf plan --markdown experiments/smoke.yaml
            """)
        {
            file, json, markdown, stats, prices,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return ExitCodes.InvalidInput;
            }

            PlanOptions options;
            try
            {
                options = new PlanOptions(ReadCorpusStats(parse.GetValue(stats)), ParsePrices(parse.GetValue(prices)));
            }
            catch (FormatException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }

            var plan = Planner.Create(spec, options);
            if (parse.GetValue(json))
            {
                cli.Out.WriteLine(JsonSerializer.Serialize(plan, JsonOptions));
            }
            else if (parse.GetValue(markdown))
            {
                cli.Out.Write(ToMarkdown(plan));
            }
            else
            {
                Render(cli, plan);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static CorpusProfile? ReadCorpusStats(string? path)
    {
        if (path is null)
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var shares = new Dictionary<SlimPajamaSource, double>();
            foreach (var p in doc.RootElement.GetProperty("long_token_share").EnumerateObject())
            {
                if (!Enum.TryParse<SlimPajamaSource>(p.Name, out var source))
                {
                    throw new FormatException($"{path}: unknown source '{p.Name}' in long_token_share");
                }

                shares[source] = p.Value.GetDouble();
            }

            var name = doc.RootElement.TryGetProperty("name", out var n) ? n.GetString() ?? path : path;
            return new CorpusProfile(name, shares);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException)
        {
            throw new FormatException($"{path}: not a corpus-stats file ({e.Message})");
        }
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

    private static string Tokens(long n) => n switch
    {
        >= 1_000_000_000 => (n / 1e9).ToString("0.###", CultureInfo.InvariantCulture) + "B",
        >= 1_000_000 => (n / 1e6).ToString("0.###", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (n / 1e3).ToString("0.###", CultureInfo.InvariantCulture) + "K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };

    private static string Bytes(long n) => n switch
    {
        >= 1L << 40 => (n / (double)(1L << 40)).ToString("0.#", CultureInfo.InvariantCulture) + " TiB",
        >= 1L << 30 => (n / (double)(1L << 30)).ToString("0.#", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (n / (double)(1L << 20)).ToString("0.#", CultureInfo.InvariantCulture) + " MiB",
        _ => (n / 1024.0).ToString("0.#", CultureInfo.InvariantCulture) + " KiB",
    };

    private static string Pct(double x) => (x * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string N(double x, string format) => x.ToString(format, CultureInfo.InvariantCulture);

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
            new[] { "expected long-document share", $"{Pct(d.ExpectedLongShare)} of tokens in documents >= 4K" },
            new[] { "batch", $"{t.SequencesPerStep} sequences = {t.TokensPerStep:N0} tokens per step (micro-batch {t.MicroBatch} x {t.GradientAccumulation} accumulation)" },
            new[] { "optimiser steps", $"{t.Steps:N0} ({Tokens(t.TrainedTokens)} tokens trained), lr {N(t.Lr, "G")} {t.Schedule}, {t.Checkpoints} checkpoints" },
            new[] { "training FLOPs", $"{N(c.TrainingFlops, "0.00e+00")} ({N(c.FlopsPerToken, "0.00e+00")} per token, attention {Pct(c.AttentionShare)})" },
            new[] { "needle grid", e.Needle ? $"{e.NeedleLengths.Count} lengths ({e.NeedleLengths[0]:N0}..{e.NeedleLengths[^1]:N0}) x {e.NeedleDepths.Count} depths x {e.Trials} trial(s) = {e.NeedleCells} cells, {Tokens(e.NeedlePrefillTokens)} prefill tokens, scorer {e.Scorer}" : "off" },
            new[] { "domain loss", e.DomainLoss ? $"lengths {string.Join(", ", e.DomainLossLengths.Select(l => SizeLiteral.Format(l, SizeBase.Binary)))}; buckets {string.Join(", ", e.Buckets)}; {Tokens(e.DomainLossTokens)} tokens" : "off" },
        };
        var sources = d.Sources.Select(s => new[] { s.Source, N(s.Weight, "0.0000"), Tokens(s.Tokens), Pct(s.NaturalLongShare), Pct(s.ExpectedLongShare) }).ToList();
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
            ("Tokens per source", ["source", "weight", "tokens", "long share (natural)", "long share (after selection)"], sources),
            ("Estimated GPU time (* = resources.gpu)", ["gpu", "peak TFLOP/s", "MFU", "GPU-hours", "wall time", "cost"], gpus),
            .. sections,
            ("Artifacts", ["step", "artifact", "count", "size"], artifacts),
            ("Assumptions", ["#", "assumption"], plan.Assumptions.Select((a, i) => new[] { (i + 1).ToString(CultureInfo.InvariantCulture), a }).ToList()),
        ];
    }

    private static void Render(CliContext cli, Plan plan)
    {
        foreach (var (title, header, rows) in Sections(plan))
        {
            var table = new Table { Title = new TableTitle(title), Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
            if (title == "Plan")
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

    public static string ToMarkdown(Plan plan)
    {
        var sb = new StringBuilder();
        foreach (var (title, header, rows) in Sections(plan))
        {
            sb.Append("#### ").AppendLine(title).AppendLine();
            var h = title == "Plan" ? ["", ""] : header;
            sb.Append("| ").AppendJoin(" | ", h).AppendLine(" |");
            sb.Append('|').AppendJoin("", h.Select(_ => "---|")).AppendLine();
            foreach (var row in rows)
            {
                sb.Append("| ").AppendJoin(" | ", row.Select(c => c.Replace("|", "\\|", StringComparison.Ordinal))).AppendLine(" |");
            }

            sb.AppendLine();
        }

        return sb.ToString();
    }
}
