using DurableTask.Core;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Steps;

/// <summary>The orchestration side of a step type: deterministic code that schedules activities through <see cref="StepScope"/>.</summary>
public interface IStepRunner
{
    Task<StepOutput> RunAsync(StepScope scope);
}

/// <summary>An activity a step type needs, registered with the worker under <see cref="Name"/>.</summary>
public sealed record ActivityRegistration(string Name, TaskActivity Activity);

/// <summary>One step type: its runner and the activities it schedules.</summary>
public sealed record StepHandler(string Type, IStepRunner Runner, IReadOnlyList<ActivityRegistration> Activities);

/// <summary>
/// Step type → handler. Workflow templates name step types (prepare-data, train, evaluate-needle, ...); a build
/// supports those whose handlers are registered here. A template step of an unregistered type fails the run with
/// "step type X is not available in this build" instead of pretending to run.
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

    public string NotAvailableMessage(string type) =>
        $"step type '{type}' is not available in this build (registered step types: {string.Join(", ", _handlers.Keys.Order(StringComparer.Ordinal))})";
}

/// <summary>Thrown (and not retried) when a step type has no handler in this build.</summary>
public sealed class StepNotAvailableException(string message) : Exception(message);
