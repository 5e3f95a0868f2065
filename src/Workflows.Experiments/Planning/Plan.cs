using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>What an experiment will do, computed without running it. Every number is explained in docs/planning.md.</summary>
public sealed record Plan(
    string Experiment,
    string ContentHash,
    string Profile,
    ModelPlan Model,
    DataPlan Data,
    TrainingPlan Training,
    ComputePlan Compute,
    EvaluationPlan Evaluation,
    IReadOnlyList<ArtifactPlan> Artifacts,
    IReadOnlyList<string> Assumptions,
    MemoryChoice? Memory = null)
{
    /// <summary>
    /// Whole sequences per optimiser step: batch_tokens / context rounded to the nearest integer (at least 1), so
    /// the paper's 4M tokens at 80K become 49 sequences (4,014,080 tokens).
    /// </summary>
    public static long SequencesPerStep(long batchTokens, long context) =>
        Math.Max(1, (long)Math.Round((double)batchTokens / context, MidpointRounding.AwayFromZero));
}

public sealed record ModelPlan(string Base, long Parameters, int Layers, int HiddenSize, int Heads, int KvHeads, string Rope);

/// <summary>One source's line of the plan.</summary>
/// <param name="Weight">Share of the selected tokens (per-source modes: the requested weight; global/none/cut: expected).</param>
/// <param name="Tokens">Budget × weight: what the source is asked for.</param>
/// <param name="NaturalLongShare">Share of the source's tokens in documents ≥ long_threshold tokens (measured, or assumed).</param>
/// <param name="ExpectedLongShare">The same share after selection.</param>
/// <param name="LongShareSd">Sampling spread (1 sd) of the share after selection; null without measured statistics; 0 when the selection was run (--input).</param>
/// <param name="AvailableTokens">Tokens the rule can take from the source in one pass (measured corpora only).</param>
/// <param name="EpochsNeeded">Passes over the source its budget needs; above 1 data prep (one pass) gives the source less than asked.</param>
/// <param name="ExpectedTokens">Tokens data prep is expected to select from the source (measured corpora only).</param>
/// <param name="OvershootTokens">budget_rule: paper — expected tokens beyond the budget (the crossing document).</param>
/// <param name="PaperShare">The source's share in the paper's Fig. 2 (right panel) for this variant, when planning on SlimPajama.</param>
public sealed record SourcePlan(
    string Source,
    double Weight,
    long Tokens,
    double NaturalLongShare,
    double ExpectedLongShare,
    double? LongShareSd = null,
    long? AvailableTokens = null,
    double? EpochsNeeded = null,
    long? ExpectedTokens = null,
    long? OvershootTokens = null,
    double? PaperShare = null);

/// <summary>One Fig. 2 length bucket: share of tokens before and after selection, and the paper's bars.</summary>
public sealed record LengthBucketPlan(string Bucket, double Before, double After, double? PaperOriginal, double? PaperVariant);

public sealed record DataPlan(
    string Corpus,
    string Tokenizer,
    string Mode,
    long TokenBudget,
    long Context,
    long Seed,
    int Shards,
    IReadOnlyList<SourcePlan> Sources,
    double ExpectedLongShare,
    long PackedSequences,
    string BudgetRule = "exact",
    string LengthStatistics = "",
    long? ExpectedSelectedTokens = null,
    string? PaperVariant = null,
    IReadOnlyList<LengthBucketPlan>? LengthHistogram = null,
    long LongThreshold = 4096);

public sealed record TrainingPlan(
    long SequencesPerStep,
    long TokensPerStep,
    long MicroBatch,
    long GradientAccumulation,
    long Steps,
    long TrainedTokens,
    double Lr,
    string Schedule,
    int Checkpoints);

public sealed record GpuEstimate(string Gpu, double PeakTflops, double AssumedMfu, double GpuHours, double WallHours, double CostUsd);

public sealed record ComputePlan(
    double FlopsPerToken,
    double TrainingFlops,
    double AttentionShare,
    string Formula,
    int GpuCount,
    string SelectedGpu,
    IReadOnlyList<GpuEstimate> Estimates);

public sealed record EvaluationPlan(
    bool Needle,
    IReadOnlyList<long> NeedleLengths,
    IReadOnlyList<int> NeedleDepths,
    int Trials,
    int NeedleCells,
    long NeedlePrefillTokens,
    string Scorer,
    bool DomainLoss,
    IReadOnlyList<long> DomainLossLengths,
    IReadOnlyList<string> Buckets,
    long DomainLossTokens);

public sealed record ArtifactPlan(string Step, string Artifact, long Count, long ApproxBytes);
