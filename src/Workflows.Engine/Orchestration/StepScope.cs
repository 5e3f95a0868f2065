using DurableTask.Core;
using DurableTask.Core.Exceptions;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Activities;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Orchestration;

/// <summary>
/// What a step runner may do inside the orchestration: call activities with the step's retry and timeout policy,
/// wait for external events with a durable deadline, and report progress. Every method is replay-safe (no clocks,
/// GUIDs or I/O; time is <see cref="OrchestrationContext.CurrentUtcDateTime"/>).
/// </summary>
public sealed class StepScope
{
    /// <summary>DTFx timers fire up to ~1 s early against Azure Storage; every deadline is padded by this much.</summary>
    public static readonly TimeSpan TimerPadding = TimeSpan.FromSeconds(1);

    /// <summary>Azure Storage queue messages can be hidden for at most 7 days, so longer timers are chained.</summary>
    public static readonly TimeSpan MaxTimerChunk = TimeSpan.FromDays(6);

    /// <summary>How many stray replies (<see cref="ActivityReply"/>) one call takes before it fails: each needs a storage failure.</summary>
    public const int MaxStrayReplies = 5;

    private readonly ExperimentOrchestration _orchestration;
    private Task? _waveDeadline;

    internal StepScope(ExperimentOrchestration orchestration, OrchestrationContext context, RunInput run, BoundStep step, IReadOnlyDictionary<string, StepOutput> inputs)
    {
        _orchestration = orchestration;
        Context = context;
        Run = run;
        Step = step;
        Inputs = inputs;
    }

    public OrchestrationContext Context { get; }
    public RunInput Run { get; }
    public BoundStep Step { get; }

    /// <summary>Outputs of the steps this one needs, by step id.</summary>
    public IReadOnlyDictionary<string, StepOutput> Inputs { get; }

    public DateTime Now => Context.CurrentUtcDateTime;

    public StepProgress Progress => _orchestration.ProgressOf(Step.Id);

    public void Report(Func<StepProgress, StepProgress> change) => _orchestration.SetProgress(Step.Id, change(Progress));

    /// <summary>
    /// Runs an activity with the step's policy: up to <c>MaxAttempts</c> attempts, each limited to the step's timeout
    /// (a durable timer raced with the activity), waiting <c>Backoff × 2^(n-1)</c> (capped at <c>MaxBackoff</c>)
    /// between attempts. Throws <see cref="StepFailedException"/> naming the shard after the last attempt.
    /// </summary>
    /// <remarks>
    /// DTFx's <c>ScheduleWithRetry(RetryOptions)</c> computes the same back-off, but it cannot bound each attempt by a
    /// timeout and does not tell how many attempts were made; this loop does both with the same primitives.
    /// </remarks>
    public async Task<T> CallAsync<T>(string activity, object input, string? shard = null)
    {
        var policy = StepRetryPolicy.From(Step);
        for (var attempt = 1; ; attempt++)
        {
            Report(p => p with { Attempts = Math.Max(p.Attempts, attempt), Retries = p.Retries + (attempt > 1 ? 1 : 0) });
            if (attempt > 1 && !Context.IsReplaying)
            {
                Telemetry.EngineTelemetry.StepRetries.Add(1, new KeyValuePair<string, object?>("step", Step.Id));
            }

            string error;
            try
            {
                using var cancelTimer = new CancellationTokenSource();
                // First attempts of a fan-out share one deadline timer (they start together); others get their own.
                var deadline = attempt == 1 && _waveDeadline is { } shared ? shared : null;
                for (var stray = 0; ; stray++)
                {
                    var call = ActivityReply.ScheduleAsync<T>(Context, activity, input);
                    deadline ??= DelayAsync(policy.Timeout, cancelTimer.Token);
                    var first = await Task.WhenAny(call, deadline);
                    if (first != call)
                    {
                        break;
                    }

                    // A stray reply (see ActivityReply) completed this task: ask again, within the same attempt and deadline.
                    if (call.IsCompletedSuccessfully && !call.Result.Answered && stray < MaxStrayReplies)
                    {
                        continue;
                    }

                    // Cancelled before the result is read, failure included: DTFx completes a run only when none of its
                    // tasks is open, so a deadline timer left running would hold a finished run open until it fires.
                    cancelTimer.Cancel();
                    var (answered, value) = await call;
                    return answered ? value : throw new StepFailedException(Step.Id, shard, $"activity {activity}: {stray + 1} replies in a row answered other calls");
                }

                error = $"timed out after {policy.Timeout} (attempt {attempt} of {policy.MaxAttempts})";
            }
            catch (TaskFailedException e)
            {
                error = e.FailureDetails?.ErrorMessage ?? e.InnerException?.Message ?? e.Message;
            }

            if (attempt >= policy.MaxAttempts)
            {
                throw new StepFailedException(Step.Id, shard,
                    attempt == 1 ? error : $"{error} (after {attempt} attempts)");
            }

            await DelayAsync(policy.DelayBefore(attempt + 1));
        }
    }

    /// <summary>
    /// The cache check every step makes once it knows its key: the published output of <paramref name="key"/> (the
    /// step is then done, recorded cached), or null. A forced rerun's recomputed steps never take it from the cache.
    /// </summary>
    public async Task<StepOutput?> TryCachedAsync(ArtifactKey key)
    {
        Report(p => p with { Phase = "cache check", OutputPrefix = key.Prefix });
        var cached = Run.MayReuseCache(Step.Id)
            ? await CallAsync<StepOutput?>(ActivityNames.LookupCache, new CacheQuery(Step.Id, key.Activity, key.ActivityVersion, key.Hash))
            : null;
        if (cached is not null)
        {
            Report(p => p with { Done = Math.Max(1, p.Total), Total = Math.Max(1, p.Total), CachedItems = Math.Max(1, p.Total) });
        }

        return cached;
    }

    /// <summary>A durable delay (chained timers for delays beyond the storage limit), padded by <see cref="TimerPadding"/>.</summary>
    public async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken = default)
    {
        var fireAt = Now + delay + TimerPadding;
        while (Now < fireAt && !cancellationToken.IsCancellationRequested)
        {
            var next = fireAt - Now > MaxTimerChunk ? Now + MaxTimerChunk : fireAt;
            try
            {
                await Context.CreateTimer(next, true, cancellationToken);
            }
            catch (TaskCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>A task that completes when the named external event arrives (raised through TaskHubClient.RaiseEventAsync).</summary>
    public Task<string> WaitForEvent(string name) => _orchestration.WaitForEvent(name);

    /// <summary>Fans out <paramref name="count"/> items, all in flight at once (DTFx spreads them over workers), reporting progress.</summary>
    public async Task<IReadOnlyList<T>> FanOutAsync<T>(int count, Func<int, Task<T>> item, string? phase = null)
    {
        Report(p => p with { Phase = phase ?? p.Phase, Done = 0, Total = count });
        var tasks = new List<Task<T>>(count);
        using var cancelWave = new CancellationTokenSource();
        // One durable timer for the whole wave instead of one per item: each timer is a queue message and history
        // events, and a fan-out of 512 would otherwise carry 512 of them. Each item's first CallAsync picks it up
        // synchronously (before its first await), so this stays deterministic.
        _waveDeadline = DelayAsync(StepRetryPolicy.From(Step).Timeout, cancelWave.Token);
        try
        {
            for (var i = 0; i < count; i++)
            {
                tasks.Add(Counted(item(i)));
            }
        }
        finally
        {
            _waveDeadline = null;
        }

        try
        {
            return await Task.WhenAll(tasks);
        }
        finally
        {
            cancelWave.Cancel();
        }

        async Task<T> Counted(Task<T> t)
        {
            var r = await t;
            Report(p => p with { Done = p.Done + 1 });
            return r;
        }
    }
}

/// <summary>The retry numbers of a step: attempts, first back-off (doubled each time, capped) and the timeout of each attempt.</summary>
public sealed record StepRetryPolicy(int MaxAttempts, TimeSpan FirstRetryInterval, double BackoffCoefficient, TimeSpan MaxRetryInterval, TimeSpan Timeout)
{
    public static StepRetryPolicy From(BoundStep step) =>
        new(Math.Max(1, step.MaxAttempts), step.Backoff, 2.0, step.MaxBackoff, step.Timeout);

    /// <summary>Wait before attempt <paramref name="attempt"/> (2, 3, ...): first × coefficient^(attempt-2), capped.</summary>
    public TimeSpan DelayBefore(int attempt)
    {
        var seconds = FirstRetryInterval.TotalSeconds * Math.Pow(BackoffCoefficient, attempt - 2);
        return TimeSpan.FromSeconds(Math.Min(seconds, MaxRetryInterval.TotalSeconds));
    }
}
