using System.Globalization;
using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>Per-source length facts the planner needs: the share of tokens in documents at or above the long threshold.</summary>
public sealed record CorpusProfile(string Name, IReadOnlyDictionary<SlimPajamaSource, double> LongTokenShare)
{
    /// <summary>
    /// Without measured statistics: 34.7% of tokens in documents of 4K tokens or more in every source, the sum of
    /// the paper's Fig. 2 "Original" bars from 4-8K up (0.115+0.098+0.070+0.036+0.028). The paper gives no
    /// per-source numbers; pass measured ones (<c>--corpus-stats</c>) for a real estimate.
    /// </summary>
    public static CorpusProfile PaperFigure2 { get; } =
        new("paper Fig. 2 (34.7% long in every source)", SlimPajama.Sources.ToDictionary(s => s, _ => 0.347));
}

/// <summary>
/// Expands an experiment into what will happen. The compute estimate is calibrated on the paper's Table 2 (days per
/// 10B tokens on 8x A100-80G): the model FLOPs utilisation (MFU) those numbers imply is interpolated in log(context)
/// and applied to other GPUs' peak bf16 rates.
/// </summary>
public static class Planner
{
    /// <summary>Dense bf16 peak TFLOP/s from the vendors' data sheets (no sparsity).</summary>
    public static readonly IReadOnlyDictionary<GpuType, double> PeakTflops = new Dictionary<GpuType, double>
    {
        [GpuType.A100] = 312,
        [GpuType.H100] = 989,
        [GpuType.H200] = 989,
        [GpuType.Cpu] = 1,
    };

    /// <summary>Assumed on-demand price per GPU-hour in USD; override with <see cref="PlanOptions.GpuHourPrice"/>.</summary>
    public static readonly IReadOnlyDictionary<GpuType, double> DefaultGpuHourPrice = new Dictionary<GpuType, double>
    {
        [GpuType.A100] = 3.40,
        [GpuType.H100] = 6.98,
        [GpuType.H200] = 7.91,
        [GpuType.Cpu] = 0,
    };

    /// <summary>The paper's Table 2, single node (8x A100-80G): days per 10B tokens.</summary>
    public static readonly IReadOnlyList<(string Model, long Context, double Days)> Table2 =
    [
        ("llama-2-7b", 4096, 3),
        ("llama-2-7b", 81920, 10),
        ("llama-2-13b", 4096, 5),
        ("llama-2-13b", 65536, 13),
    ];

    public static Plan Create(ExperimentSpec spec, PlanOptions? options = null)
    {
        options ??= new PlanOptions();
        var profile = options.Corpus ?? CorpusProfile.PaperFigure2;
        var assumptions = new List<string>();
        var data = spec.Data;
        var shape = ModelCatalog.Resolve(spec.Model);
        if (shape is null)
        {
            shape = ModelCatalog.Known["llama-2-7b"].With(spec.Model.Architecture);
            assumptions.Add($"base '{spec.Model.Base}' is a path: its shape is read at run time; the estimate assumes LLaMA-2 7B's shape");
        }

        var sources = PlanSources(spec, profile, assumptions);
        var expectedLong = sources.Sum(s => s.Weight * s.ExpectedLongShare);
        var packedSequences = data.TokenBudget / data.Context;

        var training = spec.Training;
        var perStep = Plan.SequencesPerStep(training.BatchTokens, data.Context);
        var tokensPerStep = perStep * data.Context;
        var microBatch = Math.Min(training.MicroBatch, perStep);
        var accumulation = (long)Math.Ceiling((double)perStep / microBatch);
        var steps = Math.Max(1, packedSequences / perStep);
        if (training.MaxSteps is { } max && max < steps)
        {
            steps = max;
            assumptions.Add($"max_steps {max} stops training before the token budget is used");
        }

        var trainedTokens = steps * tokensPerStep;
        var trainingPlan = new TrainingPlan(perStep, tokensPerStep, microBatch, accumulation, steps, trainedTokens, training.Lr,
            SpecModel.EnumName(typeof(LrSchedule), training.Schedule), (int)(steps / training.CheckpointInterval));

        var compute = PlanCompute(spec, shape, trainedTokens, options, assumptions);
        var evaluation = PlanEvaluation(spec);
        var artifacts = PlanArtifacts(spec, shape, packedSequences, trainingPlan, evaluation);

        var rope = spec.Model.Rope.Scaling is { } sc
            ? string.Create(CultureInfo.InvariantCulture, $"theta {spec.Model.Rope.Theta:G}, {SpecModel.EnumName(typeof(RopeScalingType), sc.Type)} x{sc.Factor:G}")
            : string.Create(CultureInfo.InvariantCulture, $"theta {spec.Model.Rope.Theta:G}");

        return new Plan(
            spec.Name,
            CanonicalForm.Hash(spec),
            SpecModel.EnumName(typeof(Profile), spec.Profile),
            new ModelPlan(spec.Model.Base, shape.Parameters, shape.Layers, shape.HiddenSize, shape.Heads, shape.KvHeads, rope),
            new DataPlan(data.Paths is { Count: > 0 } ? string.Join(", ", data.Paths) : data.Corpus, data.Tokenizer,
                SpecModel.EnumName(typeof(UpsamplingMode), data.Upsampling.Mode), data.TokenBudget, data.Context, data.Seed, data.Shards,
                sources, expectedLong, packedSequences),
            trainingPlan,
            compute,
            evaluation,
            artifacts,
            assumptions,
            MemoryPlanner.Choose(spec, shape));
    }

    /// <summary>
    /// The post-selection weight of each source and its expected long-token share. Per-source and upsample modes
    /// keep their weights (budgets are per source); global keeps short documents with probability r in every source,
    /// which shifts weight towards sources with more long text; none keeps the mix; cut leaves no long document.
    /// Keeping a fraction r of short tokens turns a long share p into p / (p + r (1 - p)).
    /// </summary>
    private static List<SourcePlan> PlanSources(ExperimentSpec spec, CorpusProfile profile, List<string> assumptions)
    {
        var data = spec.Data;
        var up = data.Upsampling;
        var weights = new Dictionary<SlimPajamaSource, double>(data.Mix.Resolve());
        if (up.Mode == UpsamplingMode.Upsample && up.Sources is { Count: > 0 } boosted)
        {
            weights = UpsampledWeights(weights, boosted, up.BoostWeight, up.TargetShare);
        }

        double Selected(double p) => up.TargetLongFraction is { } target
            ? Math.Max(target, p)
            : p / (p + (up.ShortKeepRatio * (1 - p)));

        var result = new List<SourcePlan>();
        var kept = new Dictionary<SlimPajamaSource, double>();
        foreach (var source in SlimPajama.Sources)
        {
            var p = profile.LongTokenShare.TryGetValue(source, out var share) ? share : 0;
            var after = up.Mode switch
            {
                UpsamplingMode.None => p,
                UpsamplingMode.Cut => up.CutLength <= up.LongThreshold ? 0 : p,
                _ => Selected(p),
            };
            kept[source] = up.Mode == UpsamplingMode.Global ? weights[source] * (p + (up.ShortKeepRatio * (1 - p))) : weights[source];
            result.Add(new SourcePlan(source.ToString(), 0, 0, p, after));
        }

        var total = kept.Values.Sum();
        if (up.Mode == UpsamplingMode.Global)
        {
            assumptions.Add("global mode: the source mix shifts towards sources with more long text; weights shown are expected shares");
        }

        assumptions.Add($"natural long-token share per source: {profile.Name}");
        return result.Select(r =>
        {
            var w = total > 0 ? kept[Enum.Parse<SlimPajamaSource>(r.Source)] / total : 0;
            return r with { Weight = w, Tokens = (long)Math.Round(w * data.TokenBudget) };
        }).ToList();
    }

    /// <summary>
    /// Weights of the upsample mode. boost_weight (the released code's UPSAMPLE_CODE_ARXIV_BOOK: 0.6) replaces the
    /// boosted sources' weights, then all weights are renormalised; target_share scales the boosted sources together
    /// to that share and the others to the rest, keeping relative weights within each group.
    /// </summary>
    public static Dictionary<SlimPajamaSource, double> UpsampledWeights(
        IReadOnlyDictionary<SlimPajamaSource, double> mix, IReadOnlyList<SlimPajamaSource> boosted, double? boostWeight, double? targetShare)
    {
        var w = new Dictionary<SlimPajamaSource, double>(mix);
        if (boostWeight is { } bw)
        {
            foreach (var s in boosted)
            {
                w[s] = bw;
            }
        }
        else if (targetShare is { } share)
        {
            var inside = boosted.Sum(s => w[s]);
            var outside = w.Where(p => !boosted.Contains(p.Key)).Sum(p => p.Value);
            foreach (var s in w.Keys.ToList())
            {
                w[s] = boosted.Contains(s)
                    ? (inside > 0 ? w[s] / inside * share : share / boosted.Count)
                    : (outside > 0 ? w[s] / outside * (1 - share) : 0);
            }
        }

        var sum = w.Values.Sum();
        return w.ToDictionary(p => p.Key, p => p.Value / sum);
    }

    /// <summary>
    /// Training FLOPs per token: 6·N (N = parameters outside the embedding table) plus causal attention,
    /// 6·layers·hidden·context (QKᵀ and AV cost 2·T·d each per token in the forward pass at full width, half of
    /// that under the causal mask, times 3 for forward + backward). Recomputation by activation checkpointing is
    /// not counted (MFU convention).
    /// </summary>
    public static double FlopsPerToken(ModelShape shape, long context) =>
        (6.0 * shape.NonEmbeddingParameters) + (6.0 * shape.Layers * shape.HiddenSize * context);

    /// <summary>MFU implied by one Table 2 cell: FLOPs of 10B tokens over 8 A100s x days.</summary>
    public static double Table2Mfu(string model, long context, double days) =>
        FlopsPerToken(ModelCatalog.Known[model], context) * 1e10 / (8 * days * 86400 * PeakTflops[GpuType.A100] * 1e12);

    /// <summary>
    /// MFU for a context: linear in log2(context) between the short (4K) and long cell of the same model in Table 2
    /// (13B cells for models of 10B parameters or more, else 7B), clamped to the calibrated range.
    /// </summary>
    public static double CalibratedMfu(ModelShape shape, long context)
    {
        var model = shape.Parameters >= 10_000_000_000 ? "llama-2-13b" : "llama-2-7b";
        var cells = Table2.Where(c => c.Model == model).OrderBy(c => c.Context).ToList();
        var (shortCell, longCell) = (cells[0], cells[1]);
        var m0 = Table2Mfu(model, shortCell.Context, shortCell.Days);
        var m1 = Table2Mfu(model, longCell.Context, longCell.Days);
        var t = (Math.Log2(context) - Math.Log2(shortCell.Context)) / (Math.Log2(longCell.Context) - Math.Log2(shortCell.Context));
        t = Math.Clamp(t, 0, 1);
        return m0 + (t * (m1 - m0));
    }

    private static ComputePlan PlanCompute(ExperimentSpec spec, ModelShape shape, long tokens, PlanOptions options, List<string> assumptions)
    {
        var perToken = FlopsPerToken(shape, spec.Data.Context);
        var attention = 6.0 * shape.Layers * shape.HiddenSize * spec.Data.Context;
        var total = perToken * tokens;
        var mfu = CalibratedMfu(shape, spec.Data.Context);
        var estimates = new List<GpuEstimate>();
        foreach (var gpu in new[] { GpuType.A100, GpuType.H100, GpuType.H200 })
        {
            var gpuHours = total / (mfu * PeakTflops[gpu] * 1e12) / 3600;
            var price = options.GpuHourPrice?.GetValueOrDefault(gpu) ?? DefaultGpuHourPrice[gpu];
            estimates.Add(new GpuEstimate(SpecModel.EnumName(typeof(GpuType), gpu), PeakTflops[gpu], mfu, gpuHours,
                gpuHours / spec.Resources.GpuCount, gpuHours * price));
        }

        assumptions.Add(string.Create(CultureInfo.InvariantCulture,
            $"GPU-hours: MFU {mfu * 100:0}% calibrated on the paper's Table 2 (8x A100-80G), same MFU assumed on H100/H200; wall time assumes perfect scaling over {spec.Resources.GpuCount} GPUs"));
        assumptions.Add("cost: assumed on-demand USD per GPU-hour (A100-80G 3.40, H100 6.98, H200 7.91); pass --gpu-hour-price to use yours");
        return new ComputePlan(perToken, total, attention / perToken, "6N + 6·layers·hidden·context per token (causal attention)",
            spec.Resources.GpuCount, SpecModel.EnumName(typeof(GpuType), spec.Resources.Gpu), estimates);
    }

    /// <summary>round(linspace(from, to, count)) as numpy computes it (round half to even).</summary>
    public static IReadOnlyList<long> Linspace(long from, long to, int count)
    {
        if (count == 1)
        {
            return [from];
        }

        var step = (double)(to - from) / (count - 1);
        return Enumerable.Range(0, count).Select(i => (long)Math.Round(from + (i * step), MidpointRounding.ToEven)).ToList();
    }

    private static EvaluationPlan PlanEvaluation(ExperimentSpec spec)
    {
        var needle = spec.Evaluation.Needle;
        var lengths = needle.Enabled ? Linspace(needle.Lengths.From, needle.Lengths.To, needle.Lengths.Count) : [];
        var depths = needle.Enabled ? Linspace(0, 100, needle.Depths).Select(d => (int)d).ToList() : [];
        var cells = lengths.Count * depths.Count * needle.Trials;
        var prefill = lengths.Sum() * depths.Count * needle.Trials;

        var loss = spec.Evaluation.DomainLoss;
        var lossTokens = loss.Enabled ? loss.Lengths.Sum() * loss.DocumentsPerSource * SlimPajama.Sources.Count : 0;
        return new EvaluationPlan(needle.Enabled, lengths, depths, needle.Trials, cells, prefill,
            SpecModel.EnumName(typeof(NeedleScorer), needle.Scorer), loss.Enabled,
            loss.Enabled ? loss.Lengths : [], loss.Enabled ? loss.Buckets.Select(b => b.ToString()).ToList() : [], lossTokens);
    }

    private static List<ArtifactPlan> PlanArtifacts(ExperimentSpec spec, ModelShape shape, long sequences, TrainingPlan training, EvaluationPlan evaluation)
    {
        // Packed shards hold int32 token ids; zstd typically halves them.
        var shardBytes = sequences * spec.Data.Context * 4 / 2;
        var weightBytes = shape.Parameters * 2;
        var checkpointBytes = shape.Parameters * (2 + 4 + 4 + 4);
        var list = new List<ArtifactPlan>
        {
            new("prepare-data", "packed Parquet shards", spec.Data.Shards, shardBytes),
            new("prepare-data", "statistics (JSON + PNG) and manifest", 3, 1 << 20),
            new("train", "checkpoints (weights + optimizer state)", training.Checkpoints, training.Checkpoints * checkpointBytes),
            new("train", "final model (safetensors, bf16)", 1, weightBytes),
            new("train", "metrics (JSONL) and loss curve (PNG)", 2, training.Steps * 200),
        };
        if (evaluation.Needle)
        {
            list.Add(new("evaluate-needle", "needle results (JSON per cell) and heatmap PNG", evaluation.NeedleCells + 1, (evaluation.NeedleCells * 2048L) + (1 << 20)));
        }

        if (evaluation.DomainLoss)
        {
            list.Add(new("evaluate-domain-loss", "loss table (JSON)", 1, 64 << 10));
        }

        list.Add(new("report", "report (Markdown + JSON)", 2, 256 << 10));
        return list;
    }
}

public sealed record PlanOptions(CorpusProfile? Corpus = null, IReadOnlyDictionary<GpuType, double>? GpuHourPrice = null);
