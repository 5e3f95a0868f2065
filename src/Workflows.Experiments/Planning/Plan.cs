using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>What an experiment will do, computed without running it. Every number is explained in the README.</summary>
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

public sealed record SourcePlan(string Source, double Weight, long Tokens, double NaturalLongShare, double ExpectedLongShare);

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
    long PackedSequences);

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
