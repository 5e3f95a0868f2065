using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Templates;

/// <summary>Marks a record as the parameters of a step type: bound from a template's <c>with:</c> block, nothing else.</summary>
public interface IStepParameters;

/// <summary>An output of another step that a step type reads, named by that step's type.</summary>
/// <param name="Optional">The step works without it (report without a domain-loss step).</param>
public sealed record StepInput(string Type, bool Optional = false);

/// <summary>
/// What a step type is: the parameters it reads (a record bound from the template's <c>with:</c>), the outputs of
/// other steps it reads, and whether it needs a GPU (then it runs as a GPU job taken by <c>wf gpu-agent</c>, else as
/// activities on <c>wf worker</c>). A handler is handed exactly these, so a step's cache key, built from them, covers
/// everything the handler can read.
/// </summary>
public sealed record StepContract(string Type, Type Parameters, IReadOnlyList<StepInput> Inputs, bool Gpu, string Does)
{
    public StepInput? Input(string type) => Inputs.FirstOrDefault(i => i.Type == type);
}

/// <summary>
/// The step types of the continual-pretraining process, in the order data flows through them. The template in
/// <c>workflows/</c> wires them (ids, needs, retries, timeouts, <c>with:</c> bindings); this file says what each one
/// reads and where it runs. It is the only place a step type is named in code.
/// </summary>
public static class StepContracts
{
    public static readonly StepContract PrepareData = new("prepare-data", typeof(PrepareDataParameters), [], Gpu: false,
        "read, tokenize, select and pack the training data into Parquet shards (fan-out over input files, then over shards)");

    public static readonly StepContract Train = new("train", typeof(TrainParameters), [new("prepare-data")], Gpu: true,
        "continual pretraining on the prepared shards; publishes final-model/ and metrics.jsonl");

    public static readonly StepContract EvaluateNeedle = new("evaluate-needle", typeof(NeedleParameters), [new("train")], Gpu: true,
        "the trained model on the needle-in-a-haystack grid; publishes needle/ (a result per cell, heatmap.png)");

    public static readonly StepContract EvaluateDomainLoss = new("evaluate-domain-loss", typeof(DomainLossParameters), [new("train")], Gpu: true,
        "the trained model's loss per source and length on held-out files; publishes domain-loss/loss.json");

    public static readonly StepContract Report = new("report", typeof(ReportParameters),
        [new("evaluate-needle"), new("evaluate-domain-loss", Optional: true)], Gpu: false,
        "report.md, report.json and heatmaps from the evaluations (and the baseline experiment's newest run)");

    public static readonly IReadOnlyList<StepContract> All = [PrepareData, Train, EvaluateNeedle, EvaluateDomainLoss, Report];

    public static StepContract? Find(string type) => All.FirstOrDefault(c => c.Type == type);
}

/// <summary>prepare-data: the data section without the shard count (the template's fan-out count).</summary>
/// <param name="Paths">Local inputs, relative to the experiment file; without them the registered <paramref name="Corpus"/> is read.</param>
public sealed record PrepareDataParameters(
    long TokenBudget,
    long Context,
    string Corpus,
    MixSpec Mix,
    UpsamplingSpec Upsampling,
    long Seed,
    string Tokenizer,
    IReadOnlyList<string>? Paths = null,
    BudgetRule BudgetRule = BudgetRule.Exact) : IStepParameters
{
    /// <summary>What <c>wf prep</c> reads of a whole experiment: what the template binds (a test checks every experiment).</summary>
    public static PrepareDataParameters From(ExperimentSpec spec) =>
        new(spec.Data.TokenBudget, spec.Data.Context, spec.Data.Corpus, spec.Data.Mix, spec.Data.Upsampling, spec.Data.Seed, spec.Data.Tokenizer,
            spec.Data.Paths, spec.Data.BudgetRule);
}

/// <summary>
/// train: the model and optimiser, the data settings the step count and initialisation depend on, and the GPUs the
/// memory plan places the optimizer state for.
/// </summary>
public sealed record TrainParameters(
    ModelSpec Model,
    TrainingSpec Training,
    long Context,
    long TokenBudget,
    long Seed,
    string Tokenizer,
    ResourcesSpec Resources) : IStepParameters;

/// <summary>evaluate-needle: the grid, the tokenizer, the training context (RoPE scaling and the heatmap's line), the name written into results.</summary>
public sealed record NeedleParameters(
    string Experiment,
    NeedleSpec Needle,
    string Tokenizer,
    long TrainingContext) : IStepParameters
{
    /// <summary>What <c>wf eval needle</c> reads of a whole experiment: what the template binds (a test checks every experiment).</summary>
    public static NeedleParameters From(ExperimentSpec spec) => new(spec.Name, spec.Evaluation.Needle, spec.Data.Tokenizer, spec.Data.Context);
}

/// <summary>evaluate-domain-loss: lengths, buckets and held-out data (paths or a registered corpus).</summary>
public sealed record DomainLossParameters(
    string Experiment,
    DomainLossSpec DomainLoss,
    string Tokenizer) : IStepParameters
{
    /// <summary>What <c>wf eval loss</c> reads of a whole experiment: what the template binds (a test checks every experiment).</summary>
    public static DomainLossParameters From(ExperimentSpec spec) => new(spec.Name, spec.Evaluation.DomainLoss, spec.Data.Tokenizer);
}

/// <summary>report: what the report's text names, and the baseline experiment to compare against.</summary>
public sealed record ReportParameters(
    string Experiment,
    string Model,
    NeedleScorer Scorer,
    long TrainingContext,
    long TokenBudget,
    string? Baseline = null) : IStepParameters
{
    /// <summary>What <c>wf eval report</c> reads of a whole experiment: what the template binds (a test checks every experiment).</summary>
    public static ReportParameters From(ExperimentSpec spec) =>
        new(spec.Name, spec.Model.Base, spec.Evaluation.Needle.Scorer, spec.Data.Context, spec.Data.TokenBudget, spec.GitOps.Baseline);
}
