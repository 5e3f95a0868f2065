namespace Workflows.Experiments.Spec;

// The experiment file, as immutable records. Property names map to snake_case YAML keys; constructor defaults are
// the documented defaults (made explicit in the canonical form). The JSON Schema in experiments/schema.json is
// generated from these types by SchemaGenerator: edit here, then run `wf schema --out experiments/schema.json`.

[Doc("One experiment: a continual-pretraining run with its data recipe, optimiser settings and evaluation grid.")]
public sealed record ExperimentSpec(
    [property: Doc("Experiment name: lower-case letters, digits and '-', 3-63 characters; also its blob prefix.")]
    [property: Pattern("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", "use lower-case letters, digits and '-', e.g. per-source-5b-80k")]
    string Name,
    ModelSpec Model,
    DataSpec Data,
    [property: Doc("Free text shown in reports. Not part of the content hash.")]
    [property: Cosmetic]
    string? Description = null,
    [property: Doc("Workflow template in workflows/ that runs this experiment.")]
    [property: Pattern("^[a-z0-9][a-z0-9-]*$", "a template file name from workflows/ without .yaml, e.g. continual-pretraining")]
    string Workflow = "continual-pretraining",
    [property: Doc("full: the repository policy applies to files under experiments/ (0.5B-10B tokens, 64K or 80K context). smoke/dev: tiny runs for laptops and tests; the policy's ranges are waived.")]
    Profile Profile = Profile.Full,
    TrainingSpec Training = null!,
    EvaluationSpec Evaluation = null!,
    ResourcesSpec Resources = null!,
    GitOpsSpec GitOps = null!)
{
    public TrainingSpec Training { get; init; } = Training ?? new();
    public EvaluationSpec Evaluation { get; init; } = Evaluation ?? new();
    public ResourcesSpec Resources { get; init; } = Resources ?? new();
    [YamlName("gitops")]
    [Cosmetic]
    public GitOpsSpec GitOps { get; init; } = GitOps ?? new();
}

public enum Profile
{
    Full,
    Smoke,
    Dev,
}

[Doc("Base model and position-encoding changes.")]
public sealed record ModelSpec(
    [property: Doc("Base model: a known id (llama-2-7b, llama-2-13b, tiny) or a path to a HuggingFace model directory with config.json and safetensors.")]
    string Base,
    [property: Doc("Overrides of the base architecture (for small models, or to change one field).")]
    ArchitectureSpec? Architecture = null,
    RopeSpec Rope = null!)
{
    public RopeSpec Rope { get; init; } = Rope ?? new();
}

[Doc("Architecture fields; each one left out keeps the base model's value.")]
public sealed record ArchitectureSpec(
    [property: Bounds(1, 1024)] int? Layers = null,
    [property: Bounds(16, 65536)] int? HiddenSize = null,
    [property: Bounds(1, 1024)] int? Heads = null,
    [property: Doc("Key/value heads for grouped-query attention; must divide heads.")]
    [property: Bounds(1, 1024)] int? KvHeads = null,
    [property: Bounds(16, 262144)] int? IntermediateSize = null,
    [property: Bounds(2, 1048576)] int? VocabSize = null,
    bool? TieEmbeddings = null,
    [property: Size(SizeBase.Binary)]
    [property: Bounds(16, 16777216)] long? MaxPositionEmbeddings = null);

[Doc("Rotary position embedding: base frequency and an optional scaling for context extension.")]
public sealed record RopeSpec(
    [property: Doc("RoPE base (theta). LLaMA-2: 10000; Xiong et al. style extension raises it, e.g. 500000 or 5000000.")]
    [property: Bounds(1, 1e12)]
    double Theta = 10000,
    RopeScalingSpec? Scaling = null);

[Doc("RoPE scaling: linear (position interpolation), dynamic NTK (the paper's released configs: factor 10) or YaRN.")]
public sealed record RopeScalingSpec(
    RopeScalingType Type,
    [property: Bounds(1, 1024)]
    double Factor,
    [property: Doc("Context length the base model was trained at (LLaMA-2: 4K).")]
    [property: Size(SizeBase.Binary)]
    [property: Bounds(16, 16777216)]
    long OriginalContext = 4096);

public enum RopeScalingType
{
    Linear,
    Dynamic,
    Yarn,
}

[Doc("Training data: corpus, source mix, length upsampling, budget and packing context.")]
public sealed record DataSpec(
    [property: Doc("Total training tokens. Decimal suffixes: 500M = 500,000,000; 5B = 5,000,000,000.")]
    [property: Size(SizeBase.Decimal)]
    [property: Bounds(1, 1e13)]
    long TokenBudget,
    [property: Doc("Training sequence length; sequences are packed to exactly this many tokens. Binary suffixes: 80K = 81,920; 64K = 65,536.")]
    [property: Size(SizeBase.Binary)]
    [property: Bounds(16, 16777216)]
    long Context,
    [property: Doc("Corpus id (slimpajama) for the team's registered corpus, or 'paths' below for files.")]
    [property: Pattern("^[a-z0-9][a-z0-9-]*$", "a corpus id such as slimpajama")]
    string Corpus = "slimpajama",
    [property: Doc("Input files or folders (.jsonl.zst, .jsonl, .jsonl.gz, .parquet); relative paths are relative to the experiment file.")]
    IReadOnlyList<string>? Paths = null,
    MixSpec Mix = null!,
    UpsamplingSpec Upsampling = null!,
    [property: Doc("Seed of every random choice in data selection (the released code used 15213).")]
    [property: Bounds(0, 9.2e18)]
    long Seed = 15213,
    [property: Doc("Tokenizer: llama-2 (needs a tokenizer.model you bring, see README), gpt2 (ships with wf), or a path to a SentencePiece tokenizer.model.")]
    string Tokenizer = "llama-2",
    [property: Doc("Number of output shards (parallel data-prep tasks).")]
    [property: Bounds(1, 100000)]
    int Shards = 64,
    [property: Doc("How a source's budget is met. exact (default): the document that crosses the budget is cut so every source gets exactly budget x weight, and the mix lands on the weights. paper: the released code's rule, whole documents until the count passes the budget, so each source overshoots by part of one document (a lot for Book, whose documents run to 100K+ tokens). `wf plan` shows the expected overshoot.")]
    [property: HashOmitsDefault]
    BudgetRule BudgetRule = BudgetRule.Exact)
{
    [Doc("Source mix: 'natural' (SlimPajama's own token shares) or weights per source that sum to 1.")]
    public MixSpec Mix { get; init; } = Mix ?? MixSpec.Natural;
    public UpsamplingSpec Upsampling { get; init; } = Upsampling ?? new();
}

[Doc("Length upsampling: which documents are kept, and how often.")]
public sealed record UpsamplingSpec(
    [property: Doc("none: pack the mix as is (the paper's 'Original'); cut: cut documents at cut_length ('Cut at 4K'); global: keep short documents with probability short_keep_ratio whatever their source; per-source: per-source budgets = budget x weight, short documents down-sampled within each source (the paper's recommendation); upsample: per-source with the named sources boosted.")]
    UpsamplingMode Mode = UpsamplingMode.PerSource,
    [property: Doc("A document is long when its length is at least this (paper: 4096).")]
    [property: Size(SizeBase.Binary)]
    [property: Bounds(1, 16777216)]
    long LongThreshold = 4096,
    [property: Doc("Probability of keeping a short document (paper: 0.1).")]
    [property: Bounds(0, 1)]
    double ShortKeepRatio = 0.1,
    [property: Doc("Instead of short_keep_ratio: the share of long-document tokens to reach in every source, solved exactly from the measured length distribution (e.g. 0.7).")]
    [property: Bounds(0, 1)]
    double? TargetLongFraction = null,
    [property: Doc("How document length is measured for the threshold: chars-estimate (characters / chars_per_token, as the released code) or tokens (exact).")]
    LengthMeasure LengthMeasure = LengthMeasure.CharsEstimate,
    [property: Doc("Characters per token of the estimate (released code: 3.68).")]
    [property: Bounds(0.5, 16)]
    double CharsPerToken = 3.68,
    [property: Doc("mode 'cut' only: documents are cut into pieces of this length.")]
    [property: Size(SizeBase.Binary)]
    [property: Bounds(16, 16777216)]
    long CutLength = 4096,
    [property: Doc("mode 'upsample' only: sources to boost.")]
    IReadOnlyList<SlimPajamaSource>? Sources = null,
    [property: Doc("mode 'upsample': weight given to each boosted source before renormalising (released code: 0.6 for GitHub, ArXiv and Book). Give this or target_share.")]
    [property: Bounds(0, 1000)]
    double? BoostWeight = null,
    [property: Doc("mode 'upsample': share of tokens the boosted sources get together (e.g. 0.55 for the paper's Book-up); the other sources keep their relative weights. Give this or boost_weight.")]
    [property: Bounds(0, 1)]
    double? TargetShare = null);

public enum BudgetRule
{
    Exact,
    Paper,
}

public enum UpsamplingMode
{
    None,
    Cut,
    Global,
    PerSource,
    Upsample,
}

public enum LengthMeasure
{
    CharsEstimate,
    Tokens,
}

[Doc("Optimiser and schedule.")]
public sealed record TrainingSpec(
    [property: Doc("Peak learning rate (paper: 2e-5 constant).")]
    [property: Bounds(0, 1)]
    double Lr = 2e-5,
    LrSchedule Schedule = LrSchedule.Constant,
    [property: Bounds(0, 1e9)]
    int WarmupSteps = 0,
    [property: Doc("Tokens per optimiser step (paper: 4M = 4,000,000). Rounded to whole sequences of the context.")]
    [property: Size(SizeBase.Decimal)]
    [property: Bounds(1, 1e12)]
    long BatchTokens = 4_000_000,
    [property: Doc("Sequences per forward/backward pass on one GPU; gradient accumulation makes up the rest of the batch.")]
    [property: Bounds(1, 4096)]
    int MicroBatch = 1,
    Precision Precision = Precision.Bf16,
    [property: Doc("Save a checkpoint every this many optimiser steps.")]
    [property: Bounds(1, 1e9)]
    int CheckpointInterval = 100,
    [property: Doc("Stop after this many steps even if the token budget is not used up (smoke runs, debugging).")]
    [property: Bounds(1, 1e9)]
    int? MaxSteps = null,
    [property: Bounds(0, 1e6)]
    double GradClip = 1.0,
    [property: Bounds(0, 10)]
    double WeightDecay = 0.0,
    [property: Bounds(0, 1)]
    double Beta1 = 0.9,
    [property: Bounds(0, 1)]
    double Beta2 = 0.95,
    [property: Doc("Recompute each block's activations in the backward pass so that 64K/80K contexts fit.")]
    bool ActivationCheckpointing = true,
    [property: Doc("Where the optimizer keeps its fp32 master weights and AdamW moments (12 bytes per parameter). Unset = auto.")]
    OptimizerSpec? Optimizer = null,
    [property: Doc("Keep only this many newest checkpoints (locally and in the artifact store); older ones are deleted. Unset = keep all. Not part of the content hash: it changes no result.")]
    [property: Cosmetic]
    [property: Bounds(1, 1e6)]
    int? KeepCheckpoints = null)
{
    /// <summary>The placement asked for (auto when the file does not say).</summary>
    public Offload Offload => Optimizer?.Offload ?? Offload.Auto;
}

[Doc("Optimizer placement. The memory plan (wf plan) shows what each choice needs per GPU.")]
public sealed record OptimizerSpec(
    [property: Doc("auto: on the GPU when the run fits there, else in host memory; gpu; cpu: host memory, AdamW on the CPU (ZeRO-Offload's design), the GPU keeps parameters and gradients only.")]
    Offload Offload = Offload.Auto);

public enum Offload
{
    Auto,
    Gpu,
    Cpu,
}

public enum LrSchedule
{
    Constant,
    Cosine,
    Linear,
}

public enum Precision
{
    Bf16,
    Fp32,
}

[Doc("What to measure after training.")]
public sealed record EvaluationSpec(NeedleSpec Needle = null!, DomainLossSpec DomainLoss = null!)
{
    public NeedleSpec Needle { get; init; } = Needle ?? new();
    public DomainLossSpec DomainLoss { get; init; } = DomainLoss ?? new();
}


[Doc("Needle in a haystack as the paper's code runs it.")]
public sealed record NeedleSpec(
    [property: Doc("Run the needle grid. false: the plan counts 0 cells, the engine's evaluate-needle step reads no haystack, loads no model and publishes an empty output marked disabled, and the report, comparisons and PR comments say 'disabled' (no heatmap, mean or paper comparison).")]
    bool Enabled = true,
    NeedleLengths Lengths = null!,
    [property: Doc("Number of needle depths: round(linspace(0, 100, depths)) percent (paper: 10).")]
    [property: Bounds(1, 101)]
    int Depths = 10,
    [property: Doc("word-recall: the heatmap's score in the paper's visualize.py (its quirks kept: max 11/12); rouge1: the stored ROUGE-1 F x 10; word-recall-fixed: unique-word denominator, punctuation stripped.")]
    NeedleScorer Scorer = NeedleScorer.WordRecall,
    [property: Doc("Folder of .txt files used as haystack (sorted by name); relative paths are relative to the experiment file. Default: the public-domain sample shipped with wf, which is NOT the paper's haystack: point this at a local copy of Paul Graham's essays (PaulGrahamEssays/*.txt of the paper's repository) to compare with the paper's needle numbers.")]
    string? Haystack = null,
    [property: Doc("Encode needle and context without BOS, fixing the paper code's BOS-before-needle leak. Off for fidelity.")]
    bool FixBosLeak = false,
    [property: Doc("Trials per cell with different haystack offsets (mean and spread reported).")]
    [property: Bounds(1, 100)]
    int Trials = 1,
    [property: Bounds(1, 4096)]
    int MaxNewTokens = 50,
    [property: Doc("Dynamic-NTK RoPE is evaluated with its base fixed for at least this length (the paper's code calls reset_rope(model, 81920) for every model, 13B-64K included). Default: data.context. Binary suffixes: 80K = 81,920.")]
    [property: Size(SizeBase.Binary)]
    [property: Bounds(16, 16777216)]
    [property: HashOmitsDefault]
    long? RopeResetLength = null)
{
    [Doc("Context lengths: round(linspace(from, to, count)). Decimal suffixes, as the paper's grid: 1K = 1,000, 128K = 128,000.")]
    public NeedleLengths Lengths { get; init; } = Lengths ?? new();
}

public sealed record NeedleLengths(
    [property: Size(SizeBase.Decimal)]
    [property: Bounds(16, 16777216)]
    long From = 1000,
    [property: Size(SizeBase.Decimal)]
    [property: Bounds(16, 16777216)]
    long To = 128000,
    [property: Bounds(1, 1000)]
    int Count = 40);

public enum NeedleScorer
{
    WordRecall,
    Rouge1,
    WordRecallFixed,
}

[Doc("Validation loss per SlimPajama source, by evaluation length and in length buckets (Table 5).")]
public sealed record DomainLossSpec(
    [property: Doc("Run the loss evaluation. false: the engine's evaluate-domain-loss step reads no held-out data, loads no model and publishes an empty output marked disabled; the report has no loss table.")]
    bool Enabled = true,
    IReadOnlyList<long> Lengths = null!,
    IReadOnlyList<LengthBucket> Buckets = null!,
    [property: Doc("Held-out documents per source.")]
    [property: Bounds(1, 100000)]
    int DocumentsPerSource = 32,
    [property: Doc("Held-out SlimPajama-format files or folders (e.g. SlimPajama's validation split), never the training files; relative paths are relative to the experiment file. The engine's evaluate-domain-loss step needs these or 'corpus' when enabled.")]
    IReadOnlyList<string>? Paths = null,
    [property: Doc("Instead of paths: a corpus registered in the engine's store with 'wf corpus upload' (e.g. slimpajama-validation), read by remote workers from storage. Never the training corpus.")]
    [property: Pattern("^[a-z0-9][a-z0-9-]*$", "a corpus id such as slimpajama-validation")]
    string? Corpus = null)
{
    [Doc("Evaluation context lengths (Fig. 3: 1K, 4K, 16K, 32K, 64K, 128K). Binary suffixes.")]
    [Size(SizeBase.Binary)]
    [Bounds(16, 16777216)]
    public IReadOnlyList<long> Lengths { get; init; } = Lengths ?? [1024, 4096, 16384, 32768, 65536, 131072];
    [Doc("Document-length buckets as 'from-to' (Table 5: 0-4K and 4K-128K). Binary suffixes.")]
    public IReadOnlyList<LengthBucket> Buckets { get; init; } = Buckets ?? [new(0, 4096), new(4096, 131072)];
}

[Doc("Where the run's GPU work goes; the planner estimates time and cost for it.")]
public sealed record ResourcesSpec(
    GpuType Gpu = GpuType.A100,
    [property: Bounds(1, 4096)]
    int GpuCount = 8);

public enum GpuType
{
    [YamlName("a100-80g")] A100,
    [YamlName("h100")] H100,
    [YamlName("h200")] H200,
    [YamlName("cpu")] Cpu,
}

[Doc("Pull-request metadata. Not part of the content hash.")]
public sealed record GitOpsSpec(
    [property: Doc("GitHub handle of the owner.")]
    string? Owner = null,
    [property: Doc("Experiment name to compare against in the report (e.g. original-5b-80k).")]
    string? Baseline = null,
    [property: Doc("Two-person rule for this experiment: a run must be asked for (/run or the run label) by someone other than the pull request's author. The repository variable WF_REQUIRE_OTHER_APPROVER=true turns it on for every experiment.")]
    bool RequireOtherApprover = false);
