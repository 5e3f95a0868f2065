using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Workflows.Training;
using Workflows.Training.Bench;
using Workflows.Training.Loop;
using Workflows.Training.Model;

namespace Workflows.Cli.Commands;

/// <summary>
/// wf bench train: training throughput of our TorchSharp model against its PyTorch twin, side by side.
/// </summary>
public static class BenchTrainCommand
{
    public static Command Create(CliContext cli)
    {
        var shape = new BenchShapeOptions();
        var context = new Option<int>("--context") { Description = "Training context (tokens per sequence).", DefaultValueFactory = _ => 32768 };
        var microBatch = new Option<int>("--micro-batch") { Description = "Sequences per step (one micro-batch per optimizer step).", DefaultValueFactory = _ => 1 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed warm-up steps.", DefaultValueFactory = _ => 2 };
        var steps = new Option<int>("--steps") { Description = "Timed steps.", DefaultValueFactory = _ => 5 };
        var precision = new Option<string?>("--precision") { Description = "bf16 (bf16 compute on fp32 master weights) or fp32. Default: bf16 on CUDA, fp32 on CPU." };
        precision.AcceptOnlyFromAmong("bf16", "fp32");
        var noCheckpointing = new Option<bool>("--no-checkpointing") { Description = "Keep every block's activations instead of recomputing them in the backward pass." };
        var lossChunk = new Option<int>("--loss-chunk") { Description = "Positions per chunk of the LM head + cross-entropy (0 = all logits at once).", DefaultValueFactory = _ => 8192 };
        var optimizer = new Option<string>("--optimizer") { Description = "Our AdamW: flat (flat buffers, few ops per step) or torchsharp (TorchSharp's per-tensor AdamW).", DefaultValueFactory = _ => "flat" };
        optimizer.AcceptOnlyFromAmong("flat", "torchsharp");
        var twinOptimizers = new Option<string>("--twin-optimizers") { Description = "The twin's AdamW variants, one run each: fused, foreach, plain (comma-separated).", DefaultValueFactory = _ => "fused,plain" };
        var command = new Command("train", """
            Train our LLaMA model (random init, random token ids) for W warm-up + N timed steps with the real training
            loop, and the same model in PyTorch (bench/llama_twin.py, run by --python, same settings, same precision
            scheme) in the same command; print tokens/s, MFU and device memory side by side. The twin runs first so
            its GPU memory is free again when ours runs. MFU = tokens/s x FLOPs per token / the bf16 matmul peak
            measured in this command (best of ours and the twin's); FLOPs per token = 6N + 6*L*d*T (causal
            attention; the PaLM count 12*L*d*T is shown too). See docs/training.md for every number.

            Examples:
              wf bench train --preset 200m --context 32768 --device cuda
              wf bench train --preset 200m --context 65536 --device cuda --json
              wf bench train --preset 7b --context 32768 --device cuda --twin-optimizers fused
              wf bench train --preset tiny --context 128 --steps 3 --device cpu --threads 1

            On a CPU shared with other work, --threads 1 avoids torch's spinning worker threads (timings 10x apart).
            Exit codes: 0 ok, 1 a run failed (ours, or the twin's: ours is still printed), 2 usage error.
            """);
        shape.AddTo(command);
        foreach (var o in new Option[] { context, microBatch, warmup, steps, precision, noCheckpointing, lossChunk, optimizer, twinOptimizers })
            command.Options.Add(o);
        command.SetAction(parse =>
        {
            BenchShape s;
            try
            {
                s = shape.Read(parse);
            }
            catch (ArgumentException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            var prec = (parse.GetValue(precision) ?? (s.IsCuda ? "bf16" : "fp32")) == "bf16" ? Precision.Bf16 : Precision.Fp32;
            var settings = new TrainBenchSettings(s.Config, parse.GetValue(context), parse.GetValue(microBatch), parse.GetValue(warmup),
                parse.GetValue(steps), s.Device, prec, !parse.GetValue(noCheckpointing), parse.GetValue(lossChunk),
                parse.GetValue(optimizer) == "flat" ? OptimizerKind.FlatAdamW : OptimizerKind.TorchSharpAdamW, s.Seed);
            if (settings.Context < 1 || settings.MicroBatch < 1 || settings.Steps < 1 || settings.WarmupSteps < 0 || settings.LossChunkTokens < 0)
            {
                cli.Err.WriteLine("error: --context, --micro-batch and --steps must be at least 1, --warmup and --loss-chunk at least 0");
                return ExitCodes.InvalidInput;
            }
            var variants = parse.GetValue(twinOptimizers)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (variants.Any(v => v is not ("fused" or "foreach" or "plain")))
            {
                cli.Err.WriteLine("error: --twin-optimizers takes fused, foreach and plain");
                return ExitCodes.InvalidInput;
            }
            return Run(cli, s, settings, variants, parse.GetValue(shape.Json));
        });
        return command;
    }

    static int Run(CliContext cli, BenchShape s, TrainBenchSettings settings, string[] variants, bool json)
    {
        var log = json ? cli.Err : cli.Out;
        string precisionName = settings.Precision == Precision.Bf16 ? "bf16" : "fp32";
        double flops = BenchModels.TrainingFlopsPerToken(settings.Model, settings.Context);
        double flopsPalm = BenchModels.TrainingFlopsPerToken(settings.Model, settings.Context, palm: true);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wf bench train: {s.Describe()}, context {settings.Context:N0}, micro-batch {settings.MicroBatch}, {precisionName}, checkpointing {(settings.ActivationCheckpointing ? "on" : "off")}, loss chunk {settings.LossChunkTokens:N0}, {settings.WarmupSteps} warm-up + {settings.Steps} timed steps on {settings.Device}"));

        // The twin first: its process ends (and frees the GPU) before ours allocates.
        var twin = new JsonObject();
        string? twinError = null;
        double? twinPeak = null;
        if (s.Twin)
        {
            try
            {
                string script = s.TwinScript ?? PythonTwin.ExtractScript();
                var shapeArgs = PythonTwin.ShapeArguments(settings.Model, settings.Device, settings.Seed, s.Threads);
                log.WriteLine($"twin: {s.Python} {script}");
                var peak = PythonTwin.Run(s.Python, script, "peak", s.PeakArguments(), cli.Err);
                twinPeak = peak["peak_flops"]!.GetValue<double>();
                twin["torch"] = peak["torch"]?.DeepClone();
                twin["device_name"] = peak["device_name"]?.DeepClone();
                foreach (var variant in variants)
                {
                    var args = new List<string>(shapeArgs)
                    {
                        "--context", PythonTwinArg(settings.Context), "--micro-batch", PythonTwinArg(settings.MicroBatch),
                        "--warmup", PythonTwinArg(settings.WarmupSteps), "--steps", PythonTwinArg(settings.Steps),
                        "--precision", precisionName, "--optimizer", variant, "--loss-chunk", PythonTwinArg(settings.LossChunkTokens),
                    };
                    if (!settings.ActivationCheckpointing) args.Add("--no-checkpointing");
                    twin[variant] = PythonTwin.Run(s.Python, script, "train", args, cli.Err);
                }
            }
            catch (Exception e) when (e is TwinFailedException or ArgumentException or IOException)
            {
                twinError = e.Message;
                cli.Err.WriteLine($"error: {e.Message}");
            }
        }

        TrainBenchResult ours;
        double oursPeak;
        try
        {
            if (s.Threads > 0) TorchSharp.torch.set_num_threads(s.Threads);
            var device = TorchDevice.Resolve(settings.Device);
            oursPeak = BenchModels.MatmulPeak(device, s.PeakSize, s.PeakIterations, s.PeakType);
            ours = TrainBenchmark.Run(settings);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or ExternalException)
        {
            cli.Err.WriteLine($"error: our run failed: {e.Message}");
            return ExitCodes.InvalidInput;
        }

        double peakUsed = Math.Max(oursPeak, twinPeak ?? 0);
        double Mfu(double tokensPerSecond, double perToken) => tokensPerSecond * perToken / peakUsed;
        var oursJson = new JsonObject
        {
            ["tokens_per_s"] = ours.TokensPerSecond,
            ["step_s"] = ours.StepSeconds,
            ["mfu"] = Mfu(ours.TokensPerSecond, flops),
            ["mfu_palm"] = Mfu(ours.TokensPerSecond, flopsPalm),
            ["device_used_bytes"] = ours.DeviceMemoryUsed,
            ["device_total_bytes"] = ours.DeviceMemoryTotal,
            ["loss_first"] = ours.FirstLoss,
            ["loss_last"] = ours.LastLoss,
            ["optimizer"] = settings.Optimizer == OptimizerKind.FlatAdamW ? "flat" : "torchsharp",
        };
        foreach (var variant in variants)
        {
            if (twin[variant] is not JsonObject t) continue;
            double tps = t["tokens_per_s"]!.GetValue<double>();
            t["mfu"] = Mfu(tps, flops);
            t["mfu_palm"] = Mfu(tps, flopsPalm);
            oursJson[$"ratio_vs_{variant}"] = ours.TokensPerSecond / tps;
        }

        var report = new JsonObject
        {
            ["settings"] = s.ToJson(settings.Model),
            ["context"] = settings.Context,
            ["micro_batch"] = settings.MicroBatch,
            ["warmup"] = settings.WarmupSteps,
            ["steps"] = settings.Steps,
            ["precision"] = precisionName,
            ["checkpointing"] = settings.ActivationCheckpointing,
            ["loss_chunk"] = settings.LossChunkTokens,
            ["flops_per_token"] = flops,
            ["flops_per_token_palm"] = flopsPalm,
            ["peak"] = new JsonObject { ["matmul"] = s.PeakDescription, ["ours_flops"] = oursPeak, ["twin_flops"] = twinPeak, ["used_flops"] = peakUsed },
            ["ours"] = oursJson,
            ["twin"] = twin,
            ["twin_error"] = twinError,
        };
        if (json)
        {
            cli.Out.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return twinError is null ? ExitCodes.Ok : ExitCodes.InvalidInput;
        }

        cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"matmul peak ({s.PeakDescription}): ours {BenchFormat.Flops(oursPeak)}, twin {(twinPeak is double tp ? BenchFormat.Flops(tp) : "n/a")}; MFU is against {BenchFormat.Flops(peakUsed)}"));
        var table = new Table().AddColumn("").AddColumn(new TableColumn($"ours (TorchSharp, {oursJson["optimizer"]} AdamW)").RightAligned());
        var columns = variants.Where(v => twin[v] is JsonObject).ToList();
        foreach (var v in columns) table.AddColumn(new TableColumn($"twin (PyTorch {twin["torch"]}, {v} AdamW)").RightAligned());
        void Row(string name, string oursValue, Func<JsonObject, string> twinValue) =>
            table.AddRow([name, oursValue, .. columns.Select(v => twinValue((JsonObject)twin[v]!))]);
        Row("tokens/s", BenchFormat.N0(ours.TokensPerSecond), t => BenchFormat.N0(t["tokens_per_s"]!.GetValue<double>()));
        Row("step time", BenchFormat.Seconds(ours.StepSeconds), t => BenchFormat.Seconds(t["step_s"]!.GetValue<double>()));
        Row("MFU (6N + 6·L·d·T)", BenchFormat.Percent(Mfu(ours.TokensPerSecond, flops)), t => BenchFormat.Percent(t["mfu"]!.GetValue<double>()));
        Row("MFU (PaLM, 6N + 12·L·d·T)", BenchFormat.Percent(Mfu(ours.TokensPerSecond, flopsPalm)), t => BenchFormat.Percent(t["mfu_palm"]!.GetValue<double>()));
        Row("device memory in use (total − free)", BenchFormat.Bytes(ours.DeviceMemoryUsed), t => BenchFormat.Bytes(t["device_used_bytes"]?.GetValue<long>()));
        Row("peak allocated (torch.cuda)", "not available", t => BenchFormat.Bytes(t["max_memory_allocated"]?.GetValue<long>()));
        Row("loss first → last", BenchFormat.Losses(ours.FirstLoss, ours.LastLoss), t => BenchFormat.Losses(t["loss_first"]!.GetValue<double>(), t["loss_last"]!.GetValue<double>()));
        cli.Console.Write(table);
        foreach (var v in columns)
            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ours / twin ({v} AdamW): {oursJson[$"ratio_vs_{v}"]!.GetValue<double>():0.000}x"));
        return twinError is null ? ExitCodes.Ok : ExitCodes.InvalidInput;
    }

    static string PythonTwinArg(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>The model-shape, device and twin options both bench commands share.</summary>
internal sealed class BenchShapeOptions
{
    public readonly Option<string> Preset = new("--preset") { Description = "Model shape: tiny (CPU smoke), 200m (12 layers, d=1024, 32K vocab), 7b (LLaMA-2 7B shape); random init.", DefaultValueFactory = _ => "200m" };
    public readonly Option<int?> Layers = new("--layers") { Description = "Override the preset's layer count." };
    public readonly Option<int?> Hidden = new("--hidden") { Description = "Override the preset's hidden size." };
    public readonly Option<int?> Intermediate = new("--intermediate") { Description = "Override the preset's MLP size." };
    public readonly Option<int?> Heads = new("--heads") { Description = "Override the preset's attention heads." };
    public readonly Option<int?> KvHeads = new("--kv-heads") { Description = "Override the preset's key/value heads (GQA)." };
    public readonly Option<int?> Vocab = new("--vocab") { Description = "Override the preset's vocabulary size." };
    public readonly Option<string> Device = new("--device") { Description = "cuda, cuda:N or cpu (CUDA needs the machine's libtorch on LD_LIBRARY_PATH; see docs/training.md).", DefaultValueFactory = _ => "cuda" };
    public readonly Option<int> Threads = new("--threads") { Description = "Torch CPU threads for both sides (0 = torch's default).", DefaultValueFactory = _ => 0 };
    public readonly Option<long> Seed = new("--seed") { Description = "Seed of the weights and token ids.", DefaultValueFactory = _ => 0 };
    public readonly Option<bool> NoTwin = new("--no-twin") { Description = "Measure ours only (no Python)." };
    public readonly Option<string> Python = new("--python") { Description = "The Python with torch that runs the twin.", DefaultValueFactory = _ => "python3" };
    public readonly Option<string?> TwinScript = new("--twin-script") { Description = "Run this twin script instead of the copy shipped in wf (bench/llama_twin.py)." };
    public readonly Option<int?> PeakSize = new("--peak-size") { Description = "Matmul size n of the n³ peak measurement (default 8192 on CUDA in bf16, 512 on CPU in fp32)." };
    public readonly Option<bool> Json = new("--json") { Description = "Print one JSON object with every number instead of tables (progress goes to stderr)." };

    public BenchShapeOptions() => Preset.AcceptOnlyFromAmong(BenchModels.PresetNames);

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Preset, Layers, Hidden, Intermediate, Heads, KvHeads, Vocab, Device, Threads, Seed, NoTwin, Python, TwinScript, PeakSize, Json })
            command.Options.Add(o);
    }

    public BenchShape Read(ParseResult parse)
    {
        var c = BenchModels.Preset(parse.GetValue(Preset)!);
        c = c with
        {
            NumLayers = parse.GetValue(Layers) ?? c.NumLayers,
            HiddenSize = parse.GetValue(Hidden) ?? c.HiddenSize,
            IntermediateSize = parse.GetValue(Intermediate) ?? c.IntermediateSize,
            NumHeads = parse.GetValue(Heads) ?? c.NumHeads,
            NumKeyValueHeads = parse.GetValue(KvHeads) ?? parse.GetValue(Heads) ?? c.NumKeyValueHeads,
            VocabSize = parse.GetValue(Vocab) ?? c.VocabSize,
        };
        c.Validated();
        string device = parse.GetValue(Device)!;
        bool cuda = device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
        if (!cuda && !device.Equals("cpu", StringComparison.OrdinalIgnoreCase)) throw new ArgumentException($"unknown device \"{device}\" (cpu, cuda, cuda:N)");
        int peak = parse.GetValue(PeakSize) ?? (cuda ? 8192 : 512);
        if (peak < 1) throw new ArgumentException("--peak-size must be positive");
        string? script = parse.GetValue(TwinScript);
        if (script is not null && !File.Exists(script)) throw new ArgumentException($"twin script {script} not found");
        return new BenchShape(c, parse.GetValue(Preset)!, device, cuda, parse.GetValue(Threads), parse.GetValue(Seed), !parse.GetValue(NoTwin),
            parse.GetValue(Python)!, script, peak);
    }
}

internal sealed record BenchShape(LlamaConfig Config, string Preset, string Device, bool IsCuda, int Threads, long Seed, bool Twin,
    string Python, string? TwinScript, int PeakSize)
{
    public int PeakIterations => IsCuda ? 50 : 3;
    public TorchSharp.torch.ScalarType PeakType => IsCuda ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32;
    public string PeakDescription => string.Create(CultureInfo.InvariantCulture, $"{(IsCuda ? "bf16" : "fp32")} {PeakSize}³ x {PeakIterations}");

    public List<string> PeakArguments() =>
    [
        "--device", Device, "--size", PeakSize.ToString(CultureInfo.InvariantCulture), "--iters", PeakIterations.ToString(CultureInfo.InvariantCulture),
        "--dtype", IsCuda ? "bf16" : "fp32", "--threads", Threads.ToString(CultureInfo.InvariantCulture),
    ];

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"preset {Preset} ({Config.NumLayers} layers, d={Config.HiddenSize}, {Config.NumHeads}/{Config.NumKeyValueHeads} heads, MLP {Config.IntermediateSize}, vocab {Config.VocabSize:N0}, {Config.ParameterCount() / 1e6:0.0}M parameters)");

    public JsonObject ToJson(LlamaConfig c) => new()
    {
        ["preset"] = Preset,
        ["layers"] = c.NumLayers,
        ["hidden"] = c.HiddenSize,
        ["intermediate"] = c.IntermediateSize,
        ["heads"] = c.NumHeads,
        ["kv_heads"] = c.NumKeyValueHeads,
        ["vocab"] = c.VocabSize,
        ["parameters"] = c.ParameterCount(),
        ["matmul_parameters"] = BenchModels.MatmulParameters(c),
        ["device"] = Device,
        ["threads"] = Threads,
        ["seed"] = Seed,
    };
}

internal static class BenchFormat
{
    public static string N0(double v) => v.ToString("N0", CultureInfo.InvariantCulture);
    public static string Seconds(double v) => v.ToString("0.000", CultureInfo.InvariantCulture) + " s";
    public static string Percent(double v) => (100 * v).ToString("0.0", CultureInfo.InvariantCulture) + "%";
    public static string Flops(double v) => v >= 1e12
        ? (v / 1e12).ToString("0.0", CultureInfo.InvariantCulture) + " TFLOP/s"
        : (v / 1e9).ToString("0.0", CultureInfo.InvariantCulture) + " GFLOP/s";
    public static string Bytes(long? v) => v is long b ? (b / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture) + " GiB" : "n/a";
    public static string Losses(double first, double last) => string.Create(CultureInfo.InvariantCulture, $"{first:0.000} → {last:0.000}");
}
