using DurableTask.Core;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Steps;

/// <summary>The orchestration side of a step type: deterministic code that schedules activities through <see cref="StepScope"/>.</summary>
public interface IStepRunner
{
    Task<StepOutput> RunAsync(StepScope scope);
}

/// <summary>An activity a step type needs, registered with the worker under <see cref="Name"/>.</summary>
public sealed record ActivityRegistration(string Name, TaskActivity Activity);

/// <summary>
/// One step type as this build runs it: its contract (parameters, inputs, GPU or not), the runner the orchestration
/// calls, the activities the runner schedules, and, for a step whose work is one job, the job's handler (run by a
/// GPU agent when the contract needs a GPU, else inside an activity).
/// </summary>
public sealed record StepHandler(StepContract Contract, IStepRunner Runner, IReadOnlyList<ActivityRegistration> Activities, IJobHandler? Job = null)
{
    public string Type => Contract.Type;
}

/// <summary>
/// Step type → handler. A template step of a type without a handler fails the run with "step type X is not
/// available in this build" instead of pretending to run.
/// </summary>
public sealed class StepRegistry
{
    private readonly Dictionary<string, StepHandler> _handlers = new(StringComparer.Ordinal);

    public StepRegistry Register(StepHandler handler)
    {
        _handlers[handler.Type] = handler;
        return this;
    }

    public bool TryGet(string type, out StepHandler handler) => _handlers.TryGetValue(type, out handler!);

    public IReadOnlyCollection<string> Types => _handlers.Keys;

    /// <summary>Every activity of every handler, once per name.</summary>
    public IEnumerable<ActivityRegistration> Activities =>
        _handlers.Values.SelectMany(h => h.Activities).GroupBy(a => a.Name, StringComparer.Ordinal).Select(g => g.First());

    /// <summary>The job handlers, by step type.</summary>
    public IReadOnlyDictionary<string, IJobHandler> Jobs =>
        _handlers.Values.Where(h => h.Job is not null).ToDictionary(h => h.Type, h => h.Job!, StringComparer.Ordinal);

    /// <summary>The handlers a GPU agent runs: job steps whose contract needs a GPU.</summary>
    public IReadOnlyList<IJobHandler> GpuJobs => [.. Jobs.Values.Where(j => j.Contract.Gpu)];

    public string NotAvailableMessage(string type) =>
        $"step type '{type}' is not available in this build (registered step types: {string.Join(", ", _handlers.Keys.Order(StringComparer.Ordinal))})";
}
