using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Templates;

// A workflow template (workflows/*.yaml): the DAG of steps an experiment runs, with parameters bound from the
// experiment by ${path} expressions. Parsed and checked here; the engine executes it.

[Doc("A workflow template: steps, their dependencies, fan-out, retries and timeouts.")]
public sealed record WorkflowTemplate(
    [property: Pattern("^[a-z0-9][a-z0-9-]*$", "lower-case letters, digits and '-'")]
    string Name,
    IReadOnlyList<StepTemplate> Steps,
    [property: Doc("Bumped when a change would break runs in flight (the engine versions orchestrations by it).")]
    [property: Bounds(1, 1e6)]
    int Version = 1,
    string? Description = null);

[Doc("One step of the DAG.")]
public sealed record StepTemplate(
    [property: Pattern("^[a-z0-9][a-z0-9-]*$", "lower-case letters, digits and '-'")]
    string Id,
    [property: Doc("Step type: prepare-data, train, evaluate-needle, evaluate-domain-loss, report (what each reads and whether it needs a GPU: StepContracts.cs).")]
    string Type,
    IReadOnlyList<string> Needs = null!,
    [property: Doc("Run the step once per item: 'shards' (data shards) or 'needle-lengths'.")]
    FanOutTemplate? FanOut = null,
    IReadOnlyDictionary<string, string> With = null!,
    RetryTemplate Retry = null!,
    [property: Doc("Time limit per attempt, e.g. 30m, 2h, 3d.")]
    string Timeout = "2h")
{
    [Doc("Steps that must finish first.")]
    public IReadOnlyList<string> Needs { get; init; } = Needs ?? [];

    [Doc("The step type's parameters, each bound to a ${experiment.path} (or a literal string): every parameter, nothing else.")]
    public IReadOnlyDictionary<string, string> With { get; init; } = With ?? new Dictionary<string, string>();
    public RetryTemplate Retry { get; init; } = Retry ?? new();
}

public sealed record FanOutTemplate(
    [property: Doc("What to fan out over: shards or needle-lengths.")]
    string Over,
    [property: Doc("How many items: an integer or a ${...} expression.")]
    string Count);

public sealed record RetryTemplate(
    [property: Bounds(1, 100)]
    int MaxAttempts = 3,
    [property: Doc("First wait between attempts, doubled each time (e.g. 5s).")]
    string Backoff = "5s",
    string MaxBackoff = "5m");
