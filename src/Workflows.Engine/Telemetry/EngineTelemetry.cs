using System.Diagnostics;
using System.Diagnostics.Metrics;
using DurableTask.Core;
using Workflows.Engine.Activities;

namespace Workflows.Engine.Telemetry;

/// <summary>
/// OpenTelemetry-compatible traces and metrics of the engine, through the BCL's <see cref="ActivitySource"/> and
/// <see cref="Meter"/> (both named <see cref="Name"/>); <see cref="TelemetryExport"/> exports them over OTLP when
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. Without a listener every call here costs next to nothing.
/// </summary>
/// <remarks>
/// Spans: <c>wf.activity NAME</c> around every activity execution on a worker (run id, delivery attempt, outcome);
/// <c>wf.step ID</c> and <c>wf.run</c> with the orchestration's own start and end times, emitted by the run-record
/// activity when a step or run finishes (the orchestration itself replays, so it emits nothing); <c>wf.gpu_job TYPE</c>
/// around a GPU job on an agent. Metrics: see the instrument names below.
/// </remarks>
public static class EngineTelemetry
{
    public const string Name = "Workflows.Engine";

    public static readonly ActivitySource Source = new(Name, "1.0");
    public static readonly Meter Meter = new(Name, "1.0");

    /// <summary>Seconds an activity ran on a worker; tags <c>activity</c>, <c>outcome</c> (succeeded / failed).</summary>
    public static readonly Histogram<double> ActivityDuration = Meter.CreateHistogram<double>("wf.activity.duration", "s", "Activity execution time on a worker");

    /// <summary>Activity executions; tag <c>redelivered</c> = true when DTFx delivered the same message before (a worker died or stopped mid-activity).</summary>
    public static readonly Counter<long> ActivityExecutions = Meter.CreateCounter<long>("wf.activity.executions", null, "Activity executions started");

    public static readonly UpDownCounter<long> ActivitiesInFlight = Meter.CreateUpDownCounter<long>("wf.activity.in_flight", null, "Activities running in this process");

    /// <summary>Attempts after the first, per step (from the orchestration's retry loop, counted once, not on replay).</summary>
    public static readonly Counter<long> StepRetries = Meter.CreateCounter<long>("wf.step.retries", null, "Step activity retries");

    public static readonly Histogram<double> StepDuration = Meter.CreateHistogram<double>("wf.step.duration", "s", "Step duration in orchestration time");
    public static readonly Histogram<double> RunDuration = Meter.CreateHistogram<double>("wf.run.duration", "s", "Run duration from start to finish");

    /// <summary>Seconds a GPU job waited between being enqueued and an agent claiming it.</summary>
    public static readonly Histogram<double> GpuJobQueueWait = Meter.CreateHistogram<double>("wf.gpu_job.queue_wait", "s", "GPU job wait before an agent claimed it");
    public static readonly Histogram<double> GpuJobDuration = Meter.CreateHistogram<double>("wf.gpu_job.duration", "s", "GPU job run time on an agent");

    /// <summary>Emits the span and duration of a finished step or run (called by the run-record activity, at least once per change).</summary>
    internal static void RecordRunUpdate(RunUpdate update, DateTimeOffset? runStartedAt)
    {
        if (update.Step is { StartedAt: { } s, CompletedAt: { } c } step && step.Status is "succeeded" or "failed")
        {
            var seconds = (c - s).TotalSeconds;
            StepDuration.Record(seconds, new("step", step.Step), new("outcome", step.Status), new("cached", step.Cached));
            EmitSpan($"wf.step {step.Step}", s, c, update.RunId, step.Status, ("wf.step", step.Step), ("wf.cached", step.Cached));
        }

        if (update is { Status: "Succeeded" or "Failed", CompletedAt: { } end } && runStartedAt is { } start)
        {
            RunDuration.Record((end - start.UtcDateTime).TotalSeconds, new KeyValuePair<string, object?>("outcome", update.Status));
            EmitSpan("wf.run", start.UtcDateTime, end, update.RunId, update.Status, ("wf.error", update.Error));
        }
    }

    private static void EmitSpan(string name, DateTime start, DateTime end, string runId, string outcome, params (string Key, object? Value)[] tags)
    {
        using var span = Source.StartActivity(name, ActivityKind.Internal, parentContext: default, startTime: DateTime.SpecifyKind(start, DateTimeKind.Utc));
        if (span is null)
        {
            return;
        }

        span.SetTag("wf.run_id", runId);
        span.SetTag("wf.outcome", outcome);
        foreach (var (key, value) in tags)
        {
            span.SetTag(key, value);
        }

        if (outcome is "failed" or "Failed")
        {
            span.SetStatus(ActivityStatusCode.Error);
        }

        span.SetEndTime(DateTime.SpecifyKind(end, DateTimeKind.Utc));
    }
}

/// <summary>
/// Wraps every registered activity: a span, the duration and execution metrics, and the in-flight count that a
/// graceful shutdown waits on. Transparent otherwise (input, output and exceptions pass through unchanged).
/// </summary>
/// <remarks>Before running, it asks <paramref name="isCancelled"/> whether the activity's run was cancelled; if so it fails
/// fast with <see cref="Hosting.RunCancelledException"/> (the terminated orchestration ignores the result).</remarks>
public sealed class InstrumentedActivity(string name, TaskActivity inner, InFlightWork inFlight, Func<string, Task<bool>>? isCancelled = null) : TaskActivity
{
    public string ActivityName { get; } = name;

    public override string Run(TaskContext context, string input) => inner.Run(context, input);

    public override async Task<string> RunAsync(TaskContext context, string input)
    {
        var redelivered = context.DeliveryAttempt > 1;
        EngineTelemetry.ActivityExecutions.Add(1, new("activity", ActivityName), new("redelivered", redelivered));
        using var span = EngineTelemetry.Source.StartActivity($"wf.activity {ActivityName}");
        span?.SetTag("wf.run_id", context.OrchestrationInstance?.InstanceId);
        span?.SetTag("wf.activity", ActivityName);
        span?.SetTag("wf.delivery_attempt", context.DeliveryAttempt);
        EngineTelemetry.ActivitiesInFlight.Add(1);
        using var _ = inFlight.Enter(ActivityName);
        var watch = Stopwatch.StartNew();
        var outcome = "failed";
        try
        {
            if (isCancelled is not null && context.OrchestrationInstance?.InstanceId is { } runId && await IsCancelledSafeAsync(runId).ConfigureAwait(false))
            {
                outcome = "cancelled";
                throw new Hosting.RunCancelledException(runId);
            }

            var result = await inner.RunAsync(context, input).ConfigureAwait(false);
            outcome = "succeeded";
            return result;
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
        finally
        {
            EngineTelemetry.ActivitiesInFlight.Add(-1);
            EngineTelemetry.ActivityDuration.Record(watch.Elapsed.TotalSeconds, new("activity", ActivityName), new("outcome", outcome));
            span?.SetTag("wf.outcome", outcome);
        }
    }

    private async Task<bool> IsCancelledSafeAsync(string runId)
    {
        try
        {
            return await isCancelled!(runId).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false; // cannot tell (storage hiccup): run the activity; it is idempotent either way
        }
    }
}

/// <summary>Counts work running in this process, so a stopping worker can wait for it to drain.</summary>
public sealed class InFlightWork
{
    private int _count;
    private TaskCompletionSource _idle = NewIdle(completed: true);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _executions = new(StringComparer.Ordinal);

    public int Count => Volatile.Read(ref _count);

    /// <summary>Executions started in this process, by activity name (printed by a stopping worker; the scale-out bench sums them).</summary>
    public IReadOnlyDictionary<string, int> Executions => new SortedDictionary<string, int>(_executions, StringComparer.Ordinal);

    public IDisposable Enter(string? activity = null)
    {
        if (activity is not null)
        {
            _executions.AddOrUpdate(activity, 1, (_, n) => n + 1);
        }

        lock (this)
        {
            if (_count++ == 0)
            {
                _idle = NewIdle(completed: false);
            }
        }

        return new Exit(this);
    }

    /// <summary>True when nothing is running any more; false when <paramref name="timeout"/> passed first.</summary>
    public async Task<bool> WaitIdleAsync(TimeSpan timeout)
    {
        Task idle;
        lock (this)
        {
            idle = _idle.Task;
        }

        return await Task.WhenAny(idle, Task.Delay(timeout)).ConfigureAwait(false) == idle;
    }

    private void Leave()
    {
        lock (this)
        {
            if (--_count == 0)
            {
                _idle.TrySetResult();
            }
        }
    }

    private static TaskCompletionSource NewIdle(bool completed)
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
        {
            tcs.SetResult();
        }

        return tcs;
    }

    private sealed class Exit(InFlightWork owner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                owner.Leave();
            }
        }
    }
}
