using DurableTask.Core;
using Workflows.Engine.Activities;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Orchestration;

/// <summary>
/// The one orchestration: interprets a bound workflow. Steps start as soon as every step they need has succeeded,
/// so independent steps run in parallel; each step's runner (from the <see cref="StepRegistry"/>) decides what to
/// schedule. When a step fails after its retries, no further step starts, running ones are awaited, the rest are
/// marked skipped, and the run fails naming the step, shard and error.
/// Deterministic: time comes from the context, everything else from the input and activity results.
/// </summary>
public sealed class ExperimentOrchestration(StepRegistry registry) : TaskOrchestration<RunResult, RunInput, string, RunProgress>
{
    public const string Name = "wf.experiment";

    private static readonly RetryOptions RecordRetry = new(TimeSpan.FromSeconds(1), 5) { BackoffCoefficient = 2 };

    private readonly List<string> _order = [];
    private readonly Dictionary<string, StepProgress> _progress = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource<string>> _events = new(StringComparer.Ordinal);

    public override RunProgress OnGetStatus() =>
        new(_order.ToDictionary(id => id, id => _progress[id], StringComparer.Ordinal));

    public override void OnEvent(OrchestrationContext context, string name, string input)
    {
        if (!_events.TryGetValue(name, out var waiter))
        {
            // An event before anyone waits (e.g. a job that finished while we were between polls) is kept.
            waiter = new TaskCompletionSource<string>();
            _events[name] = waiter;
        }

        waiter.TrySetResult(input);
    }

    internal Task<string> WaitForEvent(string name)
    {
        if (!_events.TryGetValue(name, out var waiter))
        {
            waiter = new TaskCompletionSource<string>();
            _events[name] = waiter;
        }

        return waiter.Task;
    }

    internal StepProgress ProgressOf(string step) => _progress[step];

    internal void SetProgress(string step, StepProgress value) => _progress[step] = value;

    public override async Task<RunResult> RunTask(OrchestrationContext context, RunInput input)
    {
        var steps = input.Workflow.Steps;
        foreach (var s in steps)
        {
            _order.Add(s.Id);
            _progress[s.Id] = new StepProgress { Total = s.FanOutCount };
        }

        await Record(context, new RunUpdate(input.RunId) { Status = "Running", StartedAt = context.CurrentUtcDateTime, InstanceId = context.OrchestrationInstance.InstanceId });

        var outputs = new Dictionary<string, StepOutput>(StringComparer.Ordinal);
        var running = new Dictionary<string, Task<StepOutput>>(StringComparer.Ordinal);
        var started = new HashSet<string>(StringComparer.Ordinal);
        StepFailedException? failure = null;
        while (true)
        {
            if (failure is null)
            {
                foreach (var step in steps)
                {
                    if (!started.Contains(step.Id) && step.Needs.All(outputs.ContainsKey))
                    {
                        started.Add(step.Id);
                        var inputs = step.Needs.ToDictionary(n => n, n => outputs[n], StringComparer.Ordinal);
                        running[step.Id] = RunStepAsync(context, input, step, inputs);
                    }
                }
            }

            if (running.Count == 0)
            {
                break;
            }

            var finished = await Task.WhenAny(running.Values);
            var id = running.First(p => p.Value == finished).Key;
            running.Remove(id);
            try
            {
                outputs[id] = await finished;
            }
            catch (StepFailedException e)
            {
                failure ??= e;
            }
        }

        foreach (var step in steps.Where(s => !started.Contains(s.Id)))
        {
            _progress[step.Id] = _progress[step.Id] with { State = StepStates.Skipped };
            await Record(context, new RunUpdate(input.RunId) { Step = new StepUpdate(step.Id, null, StepStates.Skipped, false, null, null, null, null) });
        }

        var error = failure is null ? null : Describe(failure);
        await Record(context, new RunUpdate(input.RunId)
        {
            Status = failure is null ? "Succeeded" : "Failed",
            CompletedAt = context.CurrentUtcDateTime,
            Error = error,
        });
        await NotifyFinished(context, input.RunId);
        return new RunResult(failure is null, outputs, failure?.Step, failure?.Shard, error);
    }

    public static string Describe(StepFailedException e) =>
        $"step '{e.Step}'{(e.Shard is null ? "" : $", shard {e.Shard}")}: {e.Message}";

    private async Task<StepOutput> RunStepAsync(OrchestrationContext context, RunInput run, BoundStep step, IReadOnlyDictionary<string, StepOutput> inputs)
    {
        var startedAt = context.CurrentUtcDateTime;
        _progress[step.Id] = _progress[step.Id] with { State = StepStates.Running, StartedAt = startedAt };
        await Record(context, new RunUpdate(run.RunId) { Step = new StepUpdate(step.Id, null, StepStates.Running, false, null, startedAt, null, null) });
        try
        {
            if (!registry.TryGet(step.Type, out var handler))
            {
                throw new StepFailedException(step.Id, null, registry.NotAvailableMessage(step.Type));
            }

            StepOutput output;
            try
            {
                output = await handler.Runner.RunAsync(new StepScope(this, context, run, step, inputs));
            }
            catch (Exception e) when (e is not StepFailedException)
            {
                throw new StepFailedException(step.Id, null, e.Message, e);
            }

            var completedAt = context.CurrentUtcDateTime;
            _progress[step.Id] = _progress[step.Id] with
            {
                State = StepStates.Succeeded,
                Cached = output.Cached,
                CompletedAt = completedAt,
                OutputPrefix = output.Prefix,
            };
            await Record(context, new RunUpdate(run.RunId)
            {
                Step = new StepUpdate(step.Id, null, StepStates.Succeeded, output.Cached, output.Prefix, startedAt, completedAt, null),
            });
            return output;
        }
        catch (StepFailedException e)
        {
            var completedAt = context.CurrentUtcDateTime;
            _progress[step.Id] = _progress[step.Id] with { State = StepStates.Failed, Error = e.Message, FailedShard = e.Shard, CompletedAt = completedAt };
            await Record(context, new RunUpdate(run.RunId)
            {
                Step = new StepUpdate(step.Id, e.Shard, StepStates.Failed, false, null, startedAt, completedAt, e.Message),
            });
            throw;
        }
    }

    /// <summary>Run-finished hooks (PR results, ...) after the final record; their failure never changes the run's result.</summary>
    private static async Task NotifyFinished(OrchestrationContext context, string runId)
    {
        try
        {
            await context.ScheduleWithRetry<bool>(ActivityNames.RunFinished, ActivityNames.Version, RecordRetry, runId);
        }
        catch (DurableTask.Core.Exceptions.TaskFailedException)
        {
            // Reported in the worker's log by DTFx; 'wf report --run ID --pr N' does the same by hand.
        }
    }

    private static Task<bool> Record(OrchestrationContext context, RunUpdate update) =>
        context.ScheduleWithRetry<bool>(ActivityNames.UpdateRun, ActivityNames.Version, RecordRetry, update);
}
