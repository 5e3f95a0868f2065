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
/// wf bench train: training throughput and memory of our TorchSharp trainer against its PyTorch twin, side by side.
/// </summary>
public static class BenchTrainCommand
{
    public static Command Create(CliContext cli)
    {
        var shape = new BenchShapeOptions();
        var context = new Option<string>("--context") { Description = "Training context(s), comma-separated; measured in increasing order on one model.", DefaultValueFactory = _ => "32768" };
        var microBatch = new Option<int>("--micro-batch") { Description = "Sequences per micro-batch.", DefaultValueFactory = _ => 1 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed full steps (micro-batch + optimizer step) per context.", DefaultValueFactory = _ => 1 };
        var microBatches = new Option<int>("--micro-batches") { Description = "Timed micro-batches (forward + backward) per context.", DefaultValueFactory = _ => 3 };
        var optimizerSteps = new Option<int>("--optimizer-steps") { Description = "Timed optimizer steps per context.", DefaultValueFactory = _ => 2 };
        var batchTokens = new Option<long>("--batch-tokens") { Description = "Tokens per optimizer step for the implied whole-step throughput (the paper: 4,000,000).", DefaultValueFactory = _ => 4_000_000 };
        var precision = new Option<string?>("--precision") { Description = "bf16 (bf16 parameters, fp32 master weights and gradients) or fp32. Default: bf16 on CUDA, fp32 on CPU." };
        precision.AcceptOnlyFromAmong("bf16", "fp32");
        var offload = new Option<string>("--offload") { Description = "Where the fp32 master weights and AdamW moments live, both sides: gpu, or cpu (host memory, AdamW on the CPU).", DefaultValueFactory = _ => "gpu" };
        offload.AcceptOnlyFromAmong("gpu", "cpu");
        var noCheckpointing = new Option<bool>("--no-checkpointing") { Description = "Keep every block's activations instead of recomputing them in the backward pass." };
        var lossChunk = new Option<int>("--loss-chunk") { Description = "Positions per chunk of the LM head + cross-entropy (0 = all logits at once).", DefaultValueFactory = _ => 8192 };
        var gpus = new Option<int>("--gpus") { Description = "Data-parallel ranks on this machine, one process each, as wf train --gpus N (GPUs 0..N-1 with --device cuda, NCCL; CPU processes over the TCP test transport with --device cpu); the twin runs under torchrun --nproc_per_node N. 1: one GPU, in this process.", DefaultValueFactory = _ => 1 };
        var zeroStage = new Option<int>("--zero-stage") { Description = "With --gpus N: ZeRO stage 2 (gradients and optimizer state sharded) or 3 (the parameters too, gathered block by block; needs checkpointing). Ours only: the twin is unchanged.", DefaultValueFactory = _ => 2 };
        var noSingle = new Option<bool>("--no-single") { Description = "With --gpus N: skip the 1-GPU runs of both sides, so no scaling figure (e.g. a model that fits only when sharded)." };
        var rankResults = new Option<string?>("--rank-results") { Description = "Internal: run as one rank of --gpus N and write its figures to this folder.", Hidden = true };
        var twinSchemes = new Option<string>("--twin-schemes") { Description = "The twin's precision schemes, one run each: lean (ours: bf16 parameters, fp32 master weights and gradient buffers, AdamW where --offload says), explicit (fp32 parameters cast to bf16 at each matmul, fused AdamW on the GPU).", DefaultValueFactory = _ => "lean" };
        var command = new Command("train", """
            Train our LLaMA model (random init, random token ids) with the real trainer and the same model in PyTorch
            (bench/llama_twin.py, run by --python) in the same command. For each context: warm-up steps, timed
            micro-batches (forward + backward), timed optimizer steps; printed side by side: micro-batch tokens/s,
            optimizer-step time, the throughput they imply for a whole step of --batch-tokens (4M, the paper's), MFU of
            that, device memory (and the twin's allocator peaks). The twin runs first, so its GPU memory is free again
            when ours runs; if one side fails (out of memory) the other is still printed. MFU = tokens/s x FLOPs per
            token / the bf16 matmul peak measured in this command; FLOPs per token = 6N + 6*L*d*T (the PaLM count
            12*L*d*T too). See docs/training.md.

            Examples:
              wf bench train --preset 200m --context 32768,65536 --device cuda
              wf bench train --preset 7b --context 32768,65536,81920 --offload cpu --micro-batches 2 --optimizer-steps 1
              wf bench train --preset 1b --context 32768 --twin-schemes lean,explicit --json
              wf bench train --preset tiny --context 128 --device cpu --threads 1
              wf bench train --preset 1b --context 32768,65536 --device cuda --gpus 2
              wf bench train --preset 7b --context 65536 --device cuda --gpus 2 --no-single

            With --gpus N (N > 1) ours runs as N rank processes started like wf train --gpus N (ZeRO-2 data parallel,
            rank r taking micro-batches r, r+N, ... of each round) and the twin under torchrun with FSDP2; by default
            both sides also run on one GPU, in processes of their own, for the scaling figure (N-GPU tokens/s / 1-GPU
            tokens/s). Printed per GPU and for all GPUs, with each rank's figures. NVLink multicast stays off in every
            rank process (NCCL_NVLS_ENABLE=0 and its PyTorch and NVSHMEM counterparts) unless the environment sets them.

            On a CPU shared with other work, --threads 1 avoids torch's spinning worker threads.
            Exit codes: 0 ok, 1 a run failed (the other side is still printed), 2 usage error.
            """);
        shape.AddTo(command);
        foreach (var o in new Option[] { context, microBatch, warmup, microBatches, optimizerSteps, batchTokens, precision, offload, noCheckpointing, lossChunk, gpus, zeroStage, noSingle, rankResults, twinSchemes })
            command.Options.Add(o);
        command.SetAction(parse =>
        {
            BenchShape s;
            List<int> contexts;
            try
            {
                s = shape.Read(parse);
                contexts = parse.GetValue(context)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(c => int.Parse(c, CultureInfo.InvariantCulture)).Distinct().Order().ToList();
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            var prec = (parse.GetValue(precision) ?? (s.IsCuda ? "bf16" : "fp32")) == "bf16" ? Precision.Bf16 : Precision.Fp32;
            var settings = new TrainBenchSettings(s.Config, contexts, parse.GetValue(microBatch), parse.GetValue(warmup), parse.GetValue(microBatches),
                parse.GetValue(optimizerSteps), s.Device, prec, !parse.GetValue(noCheckpointing), parse.GetValue(lossChunk),
                parse.GetValue(offload) == "cpu" ? OptimizerPlacement.Host : OptimizerPlacement.Device, parse.GetValue(batchTokens), s.Seed,
                parse.GetValue(zeroStage));
            if (settings.ZeroStage is not (2 or 3) || (settings.ZeroStage == 3 && !settings.ActivationCheckpointing))
            {
                cli.Err.WriteLine("error: --zero-stage takes 2 or 3, and 3 needs activation checkpointing (no --no-checkpointing)");
                return ExitCodes.InvalidInput;
            }
            if (contexts.Count == 0 || contexts[0] < 1 || settings.MicroBatch < 1 || settings.MicroBatches < 1 || settings.OptimizerSteps < 0
                || settings.WarmupSteps < 0 || settings.LossChunkTokens < 0 || settings.BatchTokens < 1)
            {
                cli.Err.WriteLine("error: --context, --micro-batch, --micro-batches and --batch-tokens must be at least 1, --warmup, --optimizer-steps and --loss-chunk at least 0");
                return ExitCodes.InvalidInput;
            }
            var schemes = parse.GetValue(twinSchemes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (schemes.Length == 0 || schemes.Any(v => v is not ("lean" or "explicit")))
            {
                cli.Err.WriteLine("error: --twin-schemes takes lean and explicit");
                return ExitCodes.InvalidInput;
            }
            int ranks = parse.GetValue(gpus);
            if (ranks < 1 || (ranks > 1 && s.Device.Contains(':', StringComparison.Ordinal)))
            {
                cli.Err.WriteLine(ranks < 1 ? "error: --gpus must be at least 1" : $"error: --gpus {ranks} takes GPUs 0..{ranks - 1}: use --device cuda, not {s.Device}");
                return ExitCodes.InvalidInput;
            }
            // A rank (started by the launcher below with this command line plus --rank-results) measures ours only.
            if (parse.GetValue(rankResults) is { } folder) return BenchTrainRank.Run(cli, s, settings, folder);
            if (ranks > 1)
            {
                var rankArguments = TrainCommand.WithoutOption(Environment.GetCommandLineArgs().Skip(1), "--gpus");
                return BenchTrainGpus.Run(cli, s, settings, schemes, ranks, !parse.GetValue(noSingle), rankArguments, parse.GetValue(shape.Json));
            }
            return Run(cli, s, settings, schemes, parse.GetValue(shape.Json));
        });
        return command;
    }

    static int Run(CliContext cli, BenchShape s, TrainBenchSettings settings, string[] schemes, bool json)
    {
        var log = json ? cli.Err : cli.Out;
        string offloadName = OffloadName(settings);
        log.WriteLine(Describe(s, settings));

        // The twin first: its process ends (and frees the GPU) before ours allocates.
        var twin = new Dictionary<string, JsonObject>();
        var errors = new List<string>();
        var twinRunner = BenchTwinRunner.Start(cli, s, log, errors);
        double? twinPeak = twinRunner?.PeakFlops;
        string? torchVersion = twinRunner?.TorchVersion;
        foreach (var scheme in twinRunner is null ? [] : schemes)
            if (twinRunner!.Train(settings, scheme) is { } result) twin[scheme] = result;

        IReadOnlyList<TrainBenchContextResult> ours = [];
        double? oursPeak = null;
        try
        {
            if (s.Threads > 0) TorchSharp.torch.set_num_threads(s.Threads);
            var device = TorchDevice.Resolve(settings.Device);
            oursPeak = BenchModels.MatmulPeak(device, s.PeakSize, s.PeakIterations, s.PeakType);
            ours = TrainBenchmark.Run(settings, cli.Err);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or ExternalException or OutOfMemoryException)
        {
            errors.Add($"ours: {e.Message.Split('\n')[0]}");
            cli.Err.WriteLine($"error: our run failed: {e.Message.Split('\n')[0]}");
        }
        errors.AddRange(ours.Where(r => r.Error is not null).Select(r => $"ours at {r.Context}: {r.Error}"));

        double peakUsed = Math.Max(oursPeak ?? 0, twinPeak ?? 0);
        double? Mfu(double? tokensPerSecond, double perToken) => tokensPerSecond is double t && peakUsed > 0 ? t * perToken / peakUsed : null;
        var rows = new JsonArray();
        foreach (int c in settings.Contexts)
        {
            double flops = BenchModels.TrainingFlopsPerToken(settings.Model, c);
            double flopsPalm = BenchModels.TrainingFlopsPerToken(settings.Model, c, palm: true);
            var o = ours.FirstOrDefault(r => r.Context == c);
            var oursJson = ContextJson(o, "not run");
            oursJson["mfu"] = Mfu(o?.ImpliedTokensPerSecond, flops);
            oursJson["mfu_palm"] = Mfu(o?.ImpliedTokensPerSecond, flopsPalm);
            var twinJson = new JsonObject();
            foreach (var (scheme, result) in twin)
            {
                var t = (result["contexts"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(x => x["context"]?.GetValue<int>() == c);
                if (t is null) continue;
                t = (JsonObject)t.DeepClone();
                double? implied = t["implied_tokens_per_s"]?.GetValue<double>();
                t["mfu"] = Mfu(implied, flops);
                t["mfu_palm"] = Mfu(implied, flopsPalm);
                if (o?.ImpliedTokensPerSecond is double ours4m && implied is double twin4m) oursJson[$"ratio_vs_{scheme}"] = ours4m / twin4m;
                if (o?.TokensPerSecond is double oursMicro && t["tokens_per_s"]?.GetValue<double>() is double twinMicro)
                    oursJson[$"micro_batch_ratio_vs_{scheme}"] = oursMicro / twinMicro;
                twinJson[scheme] = t;
            }
            rows.Add(new JsonObject
            {
                ["context"] = c,
                ["flops_per_token"] = flops,
                ["flops_per_token_palm"] = flopsPalm,
                ["ours"] = oursJson,
                ["twin"] = twinJson,
            });
        }

        var report = ReportHeader(s, settings, torchVersion, new JsonObject { ["matmul"] = s.PeakDescription, ["ours_flops"] = oursPeak, ["twin_flops"] = twinPeak, ["used_flops"] = peakUsed });
        report["contexts"] = rows;
        report["errors"] = new JsonArray(errors.Select(e => (JsonNode?)e).ToArray());
        int exit = errors.Count == 0 ? ExitCodes.Ok : ExitCodes.InvalidInput;
        if (json)
        {
            cli.Out.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return exit;
        }

        cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"matmul peak ({s.PeakDescription}): ours {(oursPeak is double op ? BenchFormat.Flops(op) : "n/a")}, twin {(twinPeak is double tp ? BenchFormat.Flops(tp) : "n/a")}; MFU is against {BenchFormat.Flops(peakUsed)}"));
        foreach (JsonObject row in rows.Cast<JsonObject>())
        {
            var oursJson = (JsonObject)row["ours"]!;
            var twinJson = (JsonObject)row["twin"]!;
            var table = new Table().Title($"context {row["context"]!.GetValue<int>():N0}").AddColumn("")
                .AddColumn(new TableColumn($"ours (TorchSharp, optimizer on {offloadName})").RightAligned());
            var columns = twinJson.Select(kv => kv.Key).ToList();
            foreach (var v in columns) table.AddColumn(new TableColumn($"twin (PyTorch {torchVersion}, {v})").RightAligned());
            void Row(string name, Func<JsonObject, string> value) =>
                table.AddRow([name, value(oursJson), .. columns.Select(v => value((JsonObject)twinJson[v]!))]);
            Row("tokens/s (micro-batch)", j => BenchFormat.N0(j, "tokens_per_s", orError: true));
            Row("optimizer step", j => BenchFormat.Seconds(j, "optimizer_step_s"));
            Row($"tokens/s at {settings.BatchTokens:N0} tokens/step", j => BenchFormat.N0(j, "implied_tokens_per_s"));
            Row("MFU (6N + 6·L·d·T)", j => BenchFormat.Percent(j, "mfu"));
            Row("device memory in use (total − free)", j => BenchFormat.Bytes(j, "device_used_bytes"));
            Row("peak allocated / reserved (allocator)", BenchFormat.Peaks);
            Row("loss first → last", BenchFormat.Losses);
            cli.Console.Write(table);
            foreach (var v in columns)
                if (oursJson[$"ratio_vs_{v}"] is JsonNode r)
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ours / twin ({v}) at {settings.BatchTokens:N0} tokens per step: {r.GetValue<double>():0.000}x; per micro-batch: {oursJson[$"micro_batch_ratio_vs_{v}"]!.GetValue<double>():0.000}x"));
        }
        foreach (var e in errors) cli.Err.WriteLine($"error: {e}");
        return exit;
    }

    /// <summary>One context's figures of one process (ours on one GPU, or one rank of N), in the twin's field names.</summary>
    internal static JsonObject ContextJson(TrainBenchContextResult? r, string missing) => new()
    {
        ["tokens"] = r?.Tokens,
        ["tokens_per_s"] = r?.TokensPerSecond,
        ["micro_batch_s"] = r?.MicroBatchSeconds,
        ["optimizer_step_s"] = r?.OptimizerStepSeconds,
        ["implied_tokens_per_s"] = r?.ImpliedTokensPerSecond,
        ["device_used_bytes"] = r?.DeviceMemoryUsed,
        ["device_total_bytes"] = r?.DeviceMemoryTotal,
        ["max_memory_allocated"] = r?.PeakAllocated,
        ["max_memory_reserved"] = r?.PeakReserved,
        ["loss_first"] = r?.FirstLoss,
        ["loss_last"] = r?.LastLoss,
        ["error"] = r is null ? missing : r.Error,
    };

    internal static string PrecisionName(TrainBenchSettings s) => s.Precision == Precision.Bf16 ? "bf16" : "fp32";
    internal static string OffloadName(TrainBenchSettings s) => s.Optimizer == OptimizerPlacement.Host ? "cpu" : "gpu";

    /// <summary>The first line of the command's output: what is measured, and how.</summary>
    internal static string Describe(BenchShape s, TrainBenchSettings settings, string? where = null) => string.Create(CultureInfo.InvariantCulture,
        $"wf bench train: {s.Describe()}, contexts {string.Join(", ", settings.Contexts.Select(c => c.ToString("N0", CultureInfo.InvariantCulture)))}, micro-batch {settings.MicroBatch}, {PrecisionName(settings)}, optimizer state on the {OffloadName(settings)}, checkpointing {(settings.ActivationCheckpointing ? "on" : "off")}, loss chunk {settings.LossChunkTokens:N0}{(settings.ZeroStage == 3 ? ", ZeRO stage 3 on N ranks" : "")}; per context {settings.WarmupSteps} warm-up steps, {settings.MicroBatches} timed micro-batches, {settings.OptimizerSteps} timed optimizer steps on {where ?? settings.Device}");

    /// <summary>The report's settings part, the same with one GPU or N.</summary>
    internal static JsonObject ReportHeader(BenchShape s, TrainBenchSettings settings, string? torchVersion, JsonObject peak) => new()
    {
        ["settings"] = s.ToJson(settings.Model),
        ["micro_batch"] = settings.MicroBatch,
        ["warmup"] = settings.WarmupSteps,
        ["micro_batches"] = settings.MicroBatches,
        ["optimizer_steps"] = settings.OptimizerSteps,
        ["batch_tokens"] = settings.BatchTokens,
        ["precision"] = PrecisionName(settings),
        ["offload"] = OffloadName(settings),
        ["checkpointing"] = settings.ActivationCheckpointing,
        ["loss_chunk"] = settings.LossChunkTokens,
        ["zero_stage"] = settings.ZeroStage,
        ["torch"] = torchVersion,
        ["allocator"] = Workflows.Training.Native.CudaRuntime.PoolAllocator ? "cudaMallocAsync" : "native caching allocator",
        ["peak"] = peak,
    };
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

    // Cells of a report's JSON figures: "n/a" where a figure is absent (with orError: the run's error instead).
    public static string N0(JsonObject j, string key, bool orError = false) =>
        j[key]?.GetValue<double>() is double v ? N0(v) : (orError ? j["error"]?.GetValue<string>() : null) ?? "n/a";
    public static string Seconds(JsonObject j, string key) => j[key]?.GetValue<double>() is double v ? Seconds(v) : "n/a";
    public static string Percent(JsonObject j, string key) => j[key]?.GetValue<double>() is double v ? Percent(v) : "n/a";
    public static string Bytes(JsonObject j, string key) => Bytes(j[key]?.GetValue<long>());
    public static string Peaks(JsonObject j) =>
        j["max_memory_allocated"]?.GetValue<long>() is long a ? $"{Bytes(a)} / {Bytes(j, "max_memory_reserved")}" : "n/a";
    public static string Losses(JsonObject j) =>
        j["loss_first"]?.GetValue<double>() is double f && j["loss_last"]?.GetValue<double>() is double l ? Losses(f, l) : "n/a";
}
