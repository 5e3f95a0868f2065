using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Workflows.Training;
using Workflows.Training.Bench;

namespace Workflows.Cli.Commands;

/// <summary>
/// wf bench prefill: prefill throughput and a synthetic needle grid with and without prefix reuse, ours vs the twin.
/// </summary>
public static class BenchPrefillCommand
{
    public static Command Create(CliContext cli)
    {
        var shape = new BenchShapeOptions();
        var lengths = new Option<string>("--lengths") { Description = "Prompt lengths to time: a comma list, or MIN:MAX:COUNT for round(linspace(MIN, MAX, COUNT)).", DefaultValueFactory = _ => "32768,65536,131072" };
        var chunk = new Option<int>("--chunk") { Description = "Prefill chunk (positions per forward pass; later chunks attend to the cache through a mask).", DefaultValueFactory = _ => 4096 };
        var weights = new Option<string?>("--weights") { Description = "Inference weights: bf16 or fp32. Default: bf16 on CUDA, fp32 on CPU." };
        weights.AcceptOnlyFromAmong("bf16", "fp32");
        var repeats = new Option<int>("--repeats") { Description = "Timed prefills per length; the fastest counts.", DefaultValueFactory = _ => 2 };
        var gridLengths = new Option<string>("--grid-lengths") { Description = "Lengths of the synthetic needle grid (comma list or MIN:MAX:COUNT; empty = no grid). The paper's grid is 1000:128000:40.", DefaultValueFactory = _ => "8192,32768" };
        var gridDepths = new Option<int>("--grid-depths") { Description = "Needle depths per length, evenly spaced over 0..100% of the haystack (the paper: 10).", DefaultValueFactory = _ => 10 };
        var reuseAlign = new Option<int?>("--reuse-align") { Description = "With reuse, keep the cached prefix only up to the insertion point rounded down to a multiple of this (1 = exactly up to it). Default: --chunk on CUDA (as wf eval needle does: cuDNN attention re-plans every new key length), 1 on CPU." };
        var newTokens = new Option<int>("--new-tokens") { Description = "Greedy tokens generated per grid cell (the paper: 50).", DefaultValueFactory = _ => 50 };
        var command = new Command("prefill", """
            Prefill tokens/s of our model (KV cache, chunked prefill) at the given prompt lengths, and the wall time of a
            synthetic needle grid (each cell = haystack prefix + needle + rest + question, random token ids, then
            greedy decoding) run twice: every cell from scratch, then with prefix reuse (the cells of one length share
            the haystack before the needle: the cache is truncated back to it instead of recomputed). The PyTorch twin
            (bench/llama_twin.py prefill) does the same with the same algorithm; both are printed side by side.

            Examples:
              wf bench prefill --preset 7b --device cuda --lengths 32768,65536,131072
              wf bench prefill --preset 7b --device cuda --lengths '' --grid-lengths 1000:128000:40 --grid-depths 10 --json
              wf bench prefill --preset tiny --device cpu --lengths 256,512 --grid-lengths 128,256 --grid-depths 4 --new-tokens 8

            On a CPU shared with other work, --threads 1 avoids torch's spinning worker threads (timings 10x apart).
            Exit codes: 0 ok, 1 a run failed (ours, or the twin's: ours is still printed), 2 usage error.
            """);
        shape.AddTo(command);
        foreach (var o in new Option[] { lengths, chunk, weights, repeats, gridLengths, gridDepths, newTokens, reuseAlign })
            command.Options.Add(o);
        command.SetAction(parse =>
        {
            BenchShape s;
            PrefillBenchSettings settings;
            try
            {
                s = shape.Read(parse);
                bool bf16 = (parse.GetValue(weights) ?? (s.IsCuda ? "bf16" : "fp32")) == "bf16";
                settings = new PrefillBenchSettings(s.Config, s.Device, bf16, ParseLengths(parse.GetValue(lengths)!), parse.GetValue(chunk),
                    parse.GetValue(repeats), ParseLengths(parse.GetValue(gridLengths)!), parse.GetValue(gridDepths), NewTokens: parse.GetValue(newTokens), Seed: s.Seed, ReuseAlign: parse.GetValue(reuseAlign) ?? (s.IsCuda ? parse.GetValue(chunk) : 1));
                if (settings.ChunkTokens < 1 || settings.Repeats < 1 || settings.NewTokens < 1 || settings.ReuseAlign < 1 || settings.GridDepths < 0)
                    throw new ArgumentException("--chunk, --repeats, --new-tokens and --reuse-align must be at least 1, --grid-depths at least 0");
                if (settings.Lengths.Count == 0 && settings.GridLengths.Count == 0)
                    throw new ArgumentException("nothing to measure: give --lengths or --grid-lengths");
                if (settings.GridLengths.Any(l => l <= settings.NeedleTokens + settings.QuestionTokens))
                    throw new ArgumentException($"grid lengths must exceed {settings.NeedleTokens + settings.QuestionTokens} tokens (needle + question)");
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
            return Run(cli, s, settings, parse.GetValue(shape.Json));
        });
        return command;
    }

    /// <summary>"a,b,c" or "MIN:MAX:COUNT" (round(linspace), banker's rounding like numpy's).</summary>
    internal static List<int> ParseLengths(string text)
    {
        text = text.Trim();
        if (text.Length == 0) return [];
        if (text.Contains(':', StringComparison.Ordinal))
        {
            var p = text.Split(':').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
            if (p.Length != 3 || p[2] < 1) throw new ArgumentException($"\"{text}\" is not MIN:MAX:COUNT");
            return Enumerable.Range(0, p[2])
                .Select(i => (int)Math.Round(p[2] == 1 ? p[0] : p[0] + (p[1] - p[0]) * (double)i / (p[2] - 1), MidpointRounding.ToEven)).ToList();
        }
        var values = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToList();
        if (values.Any(v => v < 1)) throw new ArgumentException("lengths must be positive");
        return values;
    }

    static int Run(CliContext cli, BenchShape s, PrefillBenchSettings settings, bool json)
    {
        var log = json ? cli.Err : cli.Out;
        string weightsName = settings.Bf16Weights ? "bf16" : "fp32";
        string Ints(IEnumerable<int> v) => string.Join(",", v.Select(x => x.ToString(CultureInfo.InvariantCulture)));
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wf bench prefill: {s.Describe()}, {weightsName} weights, chunk {settings.ChunkTokens:N0}, lengths [{Ints(settings.Lengths)}], grid {settings.GridLengths.Count} lengths x {settings.GridDepths} depths x {settings.NewTokens} new tokens, on {settings.Device}"));

        JsonObject? twin = null;
        string? twinError = null;
        if (s.Twin)
        {
            try
            {
                string script = s.TwinScript ?? PythonTwin.ExtractScript();
                log.WriteLine($"twin: {s.Python} {script}");
                var args = PythonTwin.ShapeArguments(settings.Model, settings.Device, settings.Seed, s.Threads);
                args.AddRange([
                    "--lengths", Ints(settings.Lengths), "--chunk", Ints([settings.ChunkTokens]), "--weights", weightsName,
                    "--repeats", Ints([settings.Repeats]), "--grid-lengths", Ints(settings.GridLengths), "--grid-depths", Ints([settings.GridDepths]),
                    "--needle-tokens", Ints([settings.NeedleTokens]), "--question-tokens", Ints([settings.QuestionTokens]), "--new-tokens", Ints([settings.NewTokens]),
                    "--reuse-align", Ints([settings.ReuseAlign]),
                ]);
                twin = PythonTwin.Run(s.Python, script, "prefill", args, cli.Err);
            }
            catch (Exception e) when (e is TwinFailedException or ArgumentException or IOException)
            {
                twinError = e.Message;
                cli.Err.WriteLine($"error: {e.Message}");
            }
        }

        PrefillBenchResult ours;
        try
        {
            if (s.Threads > 0) TorchSharp.torch.set_num_threads(s.Threads);
            ours = PrefillBenchmark.Run(settings);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or ExternalException)
        {
            cli.Err.WriteLine($"error: our run failed: {e.Message}");
            return ExitCodes.InvalidInput;
        }

        var twinRuns = (twin?["prefill"] as JsonArray)?.Select(r => r!.AsObject()).ToDictionary(r => r["length"]!.GetValue<int>()) ?? new();
        var prefill = new JsonArray();
        foreach (var run in ours.Prefill)
        {
            double? twinTps = twinRuns.TryGetValue(run.Length, out var t) ? t["tokens_per_s"]!.GetValue<double>() : null;
            prefill.Add(new JsonObject
            {
                ["length"] = run.Length,
                ["ours_seconds"] = run.Seconds,
                ["ours_tokens_per_s"] = run.TokensPerSecond,
                ["ours_flops_per_s"] = run.TokensPerSecond * BenchModels.PrefillFlopsPerToken(settings.Model, run.Length),
                ["twin_tokens_per_s"] = twinTps,
                ["ratio"] = twinTps is double tt ? run.TokensPerSecond / tt : null,
            });
        }
        JsonObject? grid = null;
        if (ours.Grid is { } g)
        {
            var tg = twin?["grid"] as JsonObject;
            grid = new JsonObject
            {
                ["cells"] = g.Cells,
                ["new_tokens"] = g.NewTokens,
                ["ours"] = new JsonObject
                {
                    ["without_reuse_s"] = g.WithoutReuse.Seconds,
                    ["with_reuse_s"] = g.WithReuse.Seconds,
                    ["speedup"] = g.Speedup,
                    ["prefilled_without_reuse"] = g.WithoutReuse.PrefilledTokens,
                    ["prefilled_with_reuse"] = g.WithReuse.PrefilledTokens,
                    ["identical_outputs"] = g.IdenticalOutputs,
                },
                ["twin"] = tg is null ? null : new JsonObject
                {
                    ["without_reuse_s"] = tg["without_reuse"]!["seconds"]!.GetValue<double>(),
                    ["with_reuse_s"] = tg["with_reuse"]!["seconds"]!.GetValue<double>(),
                    ["speedup"] = tg["without_reuse"]!["seconds"]!.GetValue<double>() / tg["with_reuse"]!["seconds"]!.GetValue<double>(),
                    ["identical_outputs"] = tg["identical_outputs"]?.DeepClone(),
                },
            };
        }
        var report = new JsonObject
        {
            ["settings"] = s.ToJson(settings.Model),
            ["weights"] = weightsName,
            ["chunk"] = settings.ChunkTokens,
            ["reuse_align"] = settings.ReuseAlign,
            ["repeats"] = settings.Repeats,
            ["prefill"] = prefill,
            ["grid"] = grid,
            ["ours_device_used_bytes"] = ours.DeviceMemoryUsed,
            ["twin_device_used_bytes"] = twin?["device_used_bytes"]?.DeepClone(),
            ["twin_max_memory_allocated"] = twin?["max_memory_allocated"]?.DeepClone(),
            ["twin_torch"] = twin?["torch"]?.DeepClone(),
            ["twin_error"] = twinError,
        };
        if (json)
        {
            cli.Out.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return twinError is null ? ExitCodes.Ok : ExitCodes.InvalidInput;
        }

        if (ours.Prefill.Count > 0)
        {
            var table = new Table().AddColumn(new TableColumn("prompt length").RightAligned()).AddColumn(new TableColumn("ours tokens/s").RightAligned())
                .AddColumn(new TableColumn("ours FLOP/s").RightAligned()).AddColumn(new TableColumn("twin tokens/s").RightAligned()).AddColumn(new TableColumn("ours / twin").RightAligned());
            foreach (var row in prefill.Select(r => r!.AsObject()))
                table.AddRow(BenchFormat.N0(row["length"]!.GetValue<int>()), BenchFormat.N0(row["ours_tokens_per_s"]!.GetValue<double>()),
                    BenchFormat.Flops(row["ours_flops_per_s"]!.GetValue<double>()),
                    row["twin_tokens_per_s"] is { } tt ? BenchFormat.N0(tt.GetValue<double>()) : "n/a",
                    row["ratio"] is { } ra ? ra.GetValue<double>().ToString("0.000", CultureInfo.InvariantCulture) + "x" : "n/a");
            cli.Console.Write(table);
        }
        if (grid is not null)
        {
            var table = new Table().AddColumn($"needle grid ({grid["cells"]} cells, {settings.NewTokens} new tokens each)")
                .AddColumn(new TableColumn("without reuse").RightAligned()).AddColumn(new TableColumn("with prefix reuse").RightAligned())
                .AddColumn(new TableColumn("speed-up").RightAligned()).AddColumn(new TableColumn("identical outputs").RightAligned());
            void Row(string name, JsonObject? side)
            {
                if (side is null) { table.AddRow(name, "n/a", "n/a", "n/a", "n/a"); return; }
                table.AddRow(name, BenchFormat.Seconds(side["without_reuse_s"]!.GetValue<double>()), BenchFormat.Seconds(side["with_reuse_s"]!.GetValue<double>()),
                    side["speedup"]!.GetValue<double>().ToString("0.00", CultureInfo.InvariantCulture) + "x", $"{side["identical_outputs"]}/{grid["cells"]}");
            }
            Row("ours", grid["ours"] as JsonObject);
            Row("twin", grid["twin"] as JsonObject);
            cli.Console.Write(table);
        }
        cli.Out.WriteLine($"device memory in use after the run (total − free): ours {BenchFormat.Bytes(ours.DeviceMemoryUsed)}, twin {BenchFormat.Bytes(twin?["device_used_bytes"]?.GetValue<long>())}");
        return twinError is null ? ExitCodes.Ok : ExitCodes.InvalidInput;
    }
}
