using DurableTask.Core;
using Workflows.Engine.Activities;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Orchestration;

/// <summary>
/// The one orchestration: interprets a bound workflow. <see cref="RunTask"/> is the process: every step starts as
/// soon as the steps it needs have succeeded (so independent steps run side by side); after a failure no further
/// step starts, running ones finish, the rest are recorded skipped, and the run fails naming the step, shard and
/// error. What a step does is its type's business (<see cref="StepRegistry"/>). Deterministic: time comes from the
/// context, everything else from the input and activity results.
/// </summary>
public sealed class ExperimentOrchestration(StepRegistry registry) : TaskOrchestration<RunResult, RunInput, string, RunProgress>
{
    public const string Name = "wf.experiment";

    /// <summary>The run record's activities: 5 attempts, 1 s before the second, doubling.</summary>
    private const int RecordAttempts = 5;

    private readonly List<string> _order = [];
    private readonly Dictionary<string, StepProgress> _progress = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskCompletionSource<string>> _events = new(StringComparer.Ordinal);
    private OrchestrationContext _context = null!;
    private RunInput _run = null!;
    private StepFailedException? _failure;

    public override async Task<RunResult> RunTask(OrchestrationContext context, RunInput run)
    {
        (_context, _run) = (context, run);
        foreach (var step in run.Workflow.Steps)
        {
            _order.Add(step.Id);
            _progress[step.Id] = new StepProgress { Total = step.FanOutCount };
        }

        await RecordAsync(new RunUpdate(run.RunId) { Status = "Running", StartedAt = context.CurrentUtcDateTime, InstanceId = context.OrchestrationInstance.InstanceId });

        // Steps come in dependency order, so the tasks of the steps a step needs already exist when it is reached.
        var steps = new Dictionary<string, Task<StepOutput?>>(StringComparer.Ordinal);
        foreach (var step in run.Workflow.Steps)
        {
            steps[step.Id] = RunWhenReadyAsync(step, [.. step.Needs.Select(n => steps[n])]);
        }

        var outputs = (await Task.WhenAll(steps.Values)).OfType<StepOutput>().ToDictionary(o => o.Step, StringComparer.Ordinal);
        var error = _failure is null ? null : Describe(_failure);
        await RecordAsync(new RunUpdate(run.RunId) { Status = error is null ? "Succeeded" : "Failed", CompletedAt = context.CurrentUtcDateTime, Error = error });
        await NotifyFinishedAsync();
        return new RunResult(error is null, outputs, _failure?.Step, _failure?.Shard, error);
    }

    /// <summary>Runs <paramref name="step"/> once what it needs has succeeded; skips it when any of that failed, or any step has.</summary>
    private async Task<StepOutput?> RunWhenReadyAsync(BoundStep step, IReadOnlyList<Task<StepOutput?>> needs)
    {
        var inputs = await Task.WhenAll(needs);
        if (_failure is not null || inputs.Any(i => i is null))
        {
            await SetStateAsync(step, StepStates.Skipped);
            return null;
        }

        try
        {
            return await RunStepAsync(step, [.. inputs.OfType<StepOutput>()]);
        }
        catch (StepFailedException e)
        {
            _failure ??= e;
            return null;
        }
    }

    private async Task<StepOutput> RunStepAsync(BoundStep step, IReadOnlyList<StepOutput> inputs)
    {
        var startedAt = _context.CurrentUtcDateTime;
        await SetStateAsync(step, StepStates.Running, p => p with { StartedAt = startedAt });
        try
        {
            var handler = registry.TryGet(step.Type, out var h) ? h : throw new StepFailedException(step.Id, null, registry.NotAvailableMessage(step.Type));
            StepOutput output;
            try
            {
                output = await handler.Runner.RunAsync(new StepScope(this, _context, _run, step, inputs.ToDictionary(i => i.Step, StringComparer.Ordinal)));
            }
            catch (Exception e) when (e is not StepFailedException)
            {
                throw new StepFailedException(step.Id, null, e.Message, e);
            }

            await SetStateAsync(step, StepStates.Succeeded,
                p => p with { Cached = output.Cached, CompletedAt = _context.CurrentUtcDateTime, OutputPrefix = output.Prefix },
                u => u with { Cached = output.Cached, OutputPrefix = output.Prefix, StartedAt = startedAt });
            return output;
        }
        catch (StepFailedException e)
        {
            await SetStateAsync(step, StepStates.Failed,
                p => p with { Error = e.Message, FailedShard = e.Shard, CompletedAt = _context.CurrentUtcDateTime },
                u => u with { Shard = e.Shard, Error = e.Message, StartedAt = startedAt });
            throw;
        }
    }

    /// <summary>Sets a step's state in the live progress and in the run record (completed time = now once it ended).</summary>
    private Task SetStateAsync(BoundStep step, string state, Func<StepProgress, StepProgress>? progress = null, Func<StepUpdate, StepUpdate>? record = null)
    {
        _progress[step.Id] = (progress ?? (p => p))(_progress[step.Id] with { State = state });
        var now = _context.CurrentUtcDateTime;
        var update = new StepUpdate(step.Id, null, state, false, null, state == StepStates.Running ? now : null,
            state is StepStates.Succeeded or StepStates.Failed ? now : null, null) { Type = step.Type };
        return RecordAsync(new RunUpdate(_run.RunId) { Step = (record ?? (u => u))(update) });
    }

    public static string Describe(StepFailedException e) =>
        $"step '{e.Step}'{(e.Shard is null ? "" : $", shard {e.Shard}")}: {e.Message}";

    public override RunProgress OnGetStatus() =>
        new(_order.ToDictionary(id => id, id => _progress[id], StringComparer.Ordinal));

    public override void OnEvent(OrchestrationContext context, string name, string input) => Waiter(name).TrySetResult(input);

    /// <summary>An event may arrive before anyone waits for it (a job that finished between polls): it is kept.</summary>
    internal Task<string> WaitForEvent(string name) => Waiter(name).Task;

    private TaskCompletionSource<string> Waiter(string name)
    {
        if (!_events.TryGetValue(name, out var waiter))
        {
            _events[name] = waiter = new TaskCompletionSource<string>();
        }

        return waiter;
    }

    internal StepProgress ProgressOf(string step) => _progress[step];

    internal void SetProgress(string step, StepProgress value) => _progress[step] = value;

    /// <summary>Run-finished hooks (PR results, ...) after the final record; their failure never changes the run's result.</summary>
    private async Task NotifyFinishedAsync()
    {
        try
        {
            await RecordCallAsync(ActivityNames.RunFinished, _run.RunId);
        }
        catch (DurableTask.Core.Exceptions.TaskFailedException)
        {
            // Reported in the worker's log by DTFx; 'wf report --run ID --pr N' does the same by hand.
        }
    }

    private Task RecordAsync(RunUpdate update) => RecordCallAsync(ActivityNames.UpdateRun, update);

    /// <summary>
    /// A run-record activity with DTFx's retry schedule; a stray reply (<see cref="ActivityReply"/>) is not an attempt,
    /// the call is just scheduled again. Throws the last <see cref="TaskFailedException"/>.
    /// </summary>
    private async Task RecordCallAsync(string activity, object input)
    {
        var stray = 0;
        for (var attempt = 1; ;)
        {
            try
            {
                var (answered, _) = await ActivityReply.ScheduleAsync<bool>(_context, activity, input);
                if (answered || ++stray > StepScope.MaxStrayReplies)
                {
                    return; // a record update whose reply keeps going astray has still been delivered at least once
                }

                continue;
            }
            catch (DurableTask.Core.Exceptions.TaskFailedException) when (attempt < RecordAttempts)
            {
            }

            await _context.CreateTimer(_context.CurrentUtcDateTime + TimeSpan.FromSeconds(Math.Pow(2, attempt - 1)), true);
            attempt++;
        }
    }
}
