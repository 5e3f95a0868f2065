using System.Globalization;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Planning;

/// <summary>
/// What the planner assumes when it has no measured statistics: 34.7% of tokens in documents of 4K tokens or more in
/// every source, the sum of the paper's Fig. 2 "Original" bars from 4-8K up (0.115+0.098+0.070+0.036+0.028). The paper
/// gives no per-source numbers, so the per-source table is only a placeholder until the corpus is measured.
/// </summary>
public static class AssumedLengths
{
    public const double LongTokenShare = 0.347;

    public const string Description = "assumed, not measured: 34.7% long in every source (the paper's Fig. 2 'Original' bars from 4K); measure the corpus with 'wf corpus stats' or 'wf corpus upload' for real per-source numbers";
}

/// <summary>What data prep's own selection produced on the experiment's inputs (<c>wf plan --input</c>): exact, not a forecast.</summary>
public sealed record SelectionOutcome(string Description, IReadOnlyDictionary<SlimPajamaSource, SourceOutcome> Sources, long PackedSequences);

/// <param name="BucketTokens">Tokens per Fig. 2 bucket (<see cref="PaperFigure2.BucketStarts"/>).</param>
public sealed record SourceOutcome(long Documents, long Tokens, double LongTokenShare, IReadOnlyList<long> BucketTokens);

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
        var assumptions = new List<string>();
        var data = spec.Data;
        var shape = ModelCatalog.Resolve(spec.Model);
        if (shape is null)
        {
            shape = ModelCatalog.Known["llama-2-7b"].With(spec.Model.Architecture);
            assumptions.Add($"base {Untrusted.Quote(spec.Model.Base)} is a path: its shape is read at run time; the estimate assumes LLaMA-2 7B's shape");
        }

        var dataPlan = PlanData(spec, options, assumptions);
        var packedSequences = dataPlan.PackedSequences;

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
            dataPlan,
            trainingPlan,
            compute,
            evaluation,
            artifacts,
            assumptions,
            MemoryPlanner.Choose(spec, shape));
    }

    /// <summary>The requested source weights: the mix, with upsample mode's boost applied as data prep applies it.</summary>
    public static Dictionary<SlimPajamaSource, double> RequestedWeights(ExperimentSpec spec)
    {
        var up = spec.Data.Upsampling;
        var weights = new Dictionary<SlimPajamaSource, double>(spec.Data.Mix.Resolve());
        return up.Mode == UpsamplingMode.Upsample && up.Sources is { Count: > 0 } boosted
            ? UpsampledWeights(weights, boosted, up.BoostWeight, up.TargetShare)
            : weights;
    }

    private static DataPlan PlanData(ExperimentSpec spec, PlanOptions options, List<string> assumptions)
    {
        var data = spec.Data;
        var corpus = data.Paths is { Count: > 0 } ? string.Join(", ", data.Paths) : data.Corpus;
        var budgetRule = SpecModel.EnumName(typeof(BudgetRule), data.BudgetRule);
        var mode = SpecModel.EnumName(typeof(UpsamplingMode), data.Upsampling.Mode);
        if (options.Statistics is not { } statistics)
        {
            var sources = PlanSourcesAssumed(spec, assumptions);
            if (data.BudgetRule == BudgetRule.Paper)
            {
                assumptions.Add("budget_rule paper: each source takes whole documents past its budget; how far depends on the corpus's document lengths, which are not measured here");
            }

            return new DataPlan(corpus, data.Tokenizer, mode, data.TokenBudget, data.Context, data.Seed, data.Shards, sources,
                sources.Sum(s => s.Weight * s.ExpectedLongShare), data.TokenBudget / data.Context, budgetRule, AssumedLengths.Description,
                LongThreshold: data.Upsampling.LongThreshold);
        }

        return PlanSourcesMeasured(spec, statistics, options.Selection, corpus, budgetRule, mode, assumptions);
    }

    /// <summary>
    /// Without statistics: every source assumed at <see cref="AssumedLengths.LongTokenShare"/>. Per-source and upsample
    /// modes keep their weights; global keeps short documents with probability r in every source, which shifts weight
    /// towards sources with more long text; none keeps the mix; cut leaves no long document. Keeping a fraction r of
    /// short tokens turns a long share p into p / (p + r (1 - p)).
    /// </summary>
    private static List<SourcePlan> PlanSourcesAssumed(ExperimentSpec spec, List<string> assumptions)
    {
        var data = spec.Data;
        var up = data.Upsampling;
        var weights = RequestedWeights(spec);
        double Selected(double p) => up.TargetLongFraction is { } target
            ? Math.Max(target, p)
            : p / (p + (up.ShortKeepRatio * (1 - p)));

        var result = new List<SourcePlan>();
        var kept = new Dictionary<SlimPajamaSource, double>();
        foreach (var source in SlimPajama.Sources)
        {
            const double p = AssumedLengths.LongTokenShare;
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

        assumptions.Add($"length distributions {AssumedLengths.Description}");
        return result.Select(r =>
        {
            var w = total > 0 ? kept[Enum.Parse<SlimPajamaSource>(r.Source)] / total : 0;
            return r with { Weight = w, Tokens = (long)Math.Round(w * data.TokenBudget) };
        }).ToList();
    }

    /// <summary>
    /// With measured statistics: the selection rule evaluated on the corpus's length distributions
    /// (<see cref="SelectionForecaster"/>), or, given <paramref name="selection"/>, what data prep's own selection took.
    /// </summary>
    private static DataPlan PlanSourcesMeasured(ExperimentSpec spec, CorpusStatistics statistics, SelectionOutcome? selection,
        string corpus, string budgetRule, string mode, List<string> assumptions)
    {
        var data = spec.Data;
        var up = data.Upsampling;
        var requested = RequestedWeights(spec);
        var forecast = SelectionForecaster.Forecast(spec, statistics, requested);
        var perSource = up.Mode is UpsamplingMode.PerSource or UpsamplingMode.Upsample;
        var slimPajama = (statistics.Name.StartsWith("slimpajama", StringComparison.Ordinal) || (data.Paths is not { Count: > 0 } && data.Corpus.StartsWith("slimpajama", StringComparison.Ordinal)));
        var variant = slimPajama ? PaperFigure2.VariantOf(spec) : null;

        double Expected(SlimPajamaSource s) => selection is not null ? selection.Sources.GetValueOrDefault(s)?.Tokens ?? 0 : forecast[s].ExpectedTokens;
        double LongAfter(SlimPajamaSource s) => selection is not null ? selection.Sources.GetValueOrDefault(s)?.LongTokenShare ?? 0 : forecast[s].ExpectedLongShare;
        var expectedTotal = SlimPajama.Sources.Sum(Expected);

        var sources = new List<SourcePlan>();
        foreach (var source in SlimPajama.Sources)
        {
            var f = forecast[source];
            var weight = perSource ? requested.GetValueOrDefault(source) : (expectedTotal > 0 ? Expected(source) / expectedTotal : 0);
            sources.Add(new SourcePlan(
                source.ToString(),
                weight,
                (long)Math.Round(weight * data.TokenBudget),
                f.NaturalLongShare,
                LongAfter(source),
                selection is null ? f.LongShareSd : 0,
                (long)Math.Round(f.AvailableTokens),
                double.IsFinite(f.EpochsNeeded) ? f.EpochsNeeded : null,
                (long)Math.Round(Expected(source)),
                data.BudgetRule == BudgetRule.Paper && perSource ? (long)Math.Round(f.OvershootTokens) : null,
                variant is null ? null : PaperFigure2.SourceShares[variant][source]));
        }

        var description = $"measured: {statistics.Name} ({statistics.Documents:N0} documents, {statistics.Tokens:N0} tokens, tokenizer {statistics.Tokenizer})";
        assumptions.Add(selection is null
            ? $"length distributions {description}; shares after selection are expectations, ± one sampling standard deviation"
            : $"length distributions {description}; shares after selection: {selection.Description}");
        var tokenizerFamily = data.Tokenizer.StartsWith("llama", StringComparison.Ordinal) ? "llama2" : data.Tokenizer;
        if (!statistics.Tokenizer.StartsWith(tokenizerFamily, StringComparison.Ordinal))
        {
            assumptions.Add($"the statistics were measured with tokenizer {statistics.Tokenizer}, the experiment uses {data.Tokenizer}: token lengths differ between tokenizers");
        }

        var shortSources = sources.Where(s => s.Weight > 0 && s.EpochsNeeded is > 1.0005).ToList();
        if (shortSources.Count > 0)
        {
            assumptions.Add("cannot serve their budget in one pass (data prep reads each document once, so these sources give less and the mix shifts): "
                + string.Join(", ", shortSources.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Source} needs {s.EpochsNeeded:0.##} epochs"))));
        }

        if (data.BudgetRule == BudgetRule.Paper && perSource)
        {
            var overshoot = sources.Sum(s => s.OvershootTokens ?? 0);
            assumptions.Add(string.Create(CultureInfo.InvariantCulture,
                $"budget_rule paper: whole documents past each budget, about {overshoot:N0} tokens beyond the budget in all ({overshoot / (double)data.TokenBudget:P2}); budget_rule exact would cut the crossing documents and meet every source's budget"));
        }

        var expectedLong = expectedTotal > 0 ? SlimPajama.Sources.Sum(s => Expected(s) * LongAfter(s)) / expectedTotal : 0;
        long packed;
        if (selection is not null)
        {
            packed = selection.PackedSequences;
        }
        else
        {
            // Every selected document (or piece) is packed with one BOS or separator.
            var packedTokens = expectedTotal + SlimPajama.Sources.Sum(s => forecast[s].ExpectedDocuments);
            packed = (long)Math.Floor(packedTokens / data.Context);
        }

        var buckets = PaperFigure2.BucketStarts.Count;
        var before = Enumerable.Range(0, buckets).Select(b => SlimPajama.Sources.Sum(s => forecast[s].BucketsBefore[b])).ToArray();
        var after = Enumerable.Range(0, buckets).Select(b => SlimPajama.Sources.Sum(s => selection is not null
            ? (double)(selection.Sources.GetValueOrDefault(s)?.BucketTokens[b] ?? 0)
            : forecast[s].BucketsAfter[b])).ToArray();
        var beforeTotal = before.Sum();
        var afterTotal = after.Sum();
        var histogram = Enumerable.Range(0, buckets).Select(b => new LengthBucketPlan(
            b < PaperFigure2.Buckets.Count ? PaperFigure2.Buckets[b] : ">128K",
            beforeTotal > 0 ? before[b] / beforeTotal : 0,
            afterTotal > 0 ? after[b] / afterTotal : 0,
            slimPajama && b < PaperFigure2.Buckets.Count ? PaperFigure2.LengthShares["Original"][b] : null,
            variant is not null && b < PaperFigure2.Buckets.Count ? PaperFigure2.LengthShares[variant][b] : null)).ToList();

        return new DataPlan(corpus, data.Tokenizer, mode, data.TokenBudget, data.Context, data.Seed, data.Shards, sources,
            expectedLong, packed, budgetRule, description, (long)Math.Round(expectedTotal), variant, histogram, data.Upsampling.LongThreshold);
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
            new(StepContracts.PrepareData.Type, "packed Parquet shards", spec.Data.Shards, shardBytes),
            new(StepContracts.PrepareData.Type, "statistics (JSON + PNG) and manifest", 3, 1 << 20),
            new(StepContracts.Train.Type, "checkpoints (weights + optimizer state)", training.Checkpoints, training.Checkpoints * checkpointBytes),
            new(StepContracts.Train.Type, "final model (safetensors, bf16)", 1, weightBytes),
            new(StepContracts.Train.Type, "metrics (JSONL) and loss curve (PNG)", 2, training.Steps * 200),
        };
        if (evaluation.Needle)
        {
            list.Add(new(StepContracts.EvaluateNeedle.Type, "needle results (JSON per cell) and heatmap PNG", evaluation.NeedleCells + 1, (evaluation.NeedleCells * 2048L) + (1 << 20)));
        }

        if (evaluation.DomainLoss)
        {
            list.Add(new(StepContracts.EvaluateDomainLoss.Type, "loss table (JSON)", 1, 64 << 10));
        }

        list.Add(new(StepContracts.Report.Type, "report (Markdown + JSON)", 2, 256 << 10));
        return list;
    }
}

/// <param name="Statistics">Measured length distributions of the experiment's corpus; without them the plan assumes (and says so).</param>
/// <param name="Selection">What data prep's own selection took from the experiment's inputs (<c>wf plan --input</c>).</param>
public sealed record PlanOptions(
    CorpusStatistics? Statistics = null,
    IReadOnlyDictionary<GpuType, double>? GpuHourPrice = null,
    SelectionOutcome? Selection = null);
