using System.Collections.Concurrent;
using System.Diagnostics;
using DurableTask.Core;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine.Steps;
using Workflows.Engine.Telemetry;

namespace Workflows.Engine.Jobs;

/// <summary>
/// Takes GPU jobs: polls the queue index (<c>gpu-queue/</c>), claims a job by leasing its status blob, runs it with
/// the job's handler while a <see cref="LeaseKeeper"/> renews the lease as its heartbeat, writes the final status
/// (conditioned on the lease) and raises the completion event to the orchestration. A lease that cannot be renewed
/// stops the work before it can lapse; the job then goes back to whichever agent claims it next, which records how
/// the previous claim ended. Runs in <c>wf gpu-agent</c>, or inside <c>wf run</c> for local use.
/// </summary>
public sealed class GpuAgent
{
    private readonly EngineServices _services;
    private readonly Dictionary<string, IJobHandler> _handlers;
    private readonly GpuJobStore _jobs;
    private readonly TextWriter? _log;
    private readonly ConcurrentDictionary<string, GpuJob> _known = new(StringComparer.Ordinal);

    /// <summary>Why this agent lost the lease of a job it was running, until the job is claimed again (the claim's ending then says so).</summary>
    private readonly ConcurrentDictionary<string, string> _lostLeases = new(StringComparer.Ordinal);

    private int _running;

    public GpuAgent(EngineServices services, IEnumerable<IJobHandler> handlers, TextWriter? log = null)
    {
        _services = services;
        _handlers = handlers.ToDictionary(h => h.Contract.Type, StringComparer.Ordinal);
        _jobs = new GpuJobStore(services.Store);
        _log = log;
    }

    public string AgentId => _services.Options.WorkerId;

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    public GpuLeaseOptions Lease { get; init; } = new();

    /// <summary>Jobs this agent finished (succeeded or failed), for tests and logs.</summary>
    public int JobsRun { get; private set; }

    /// <summary>Jobs this agent gave back unfinished at shutdown (status <c>queued</c> again, lease released).</summary>
    public int JobsHandedBack { get; private set; }

    /// <summary>Jobs whose lease this agent lost while running them (their work was stopped).</summary>
    public int LeasesLost { get; private set; }

    /// <summary>When the job loop last went round or a job last made progress (the heartbeat's health check reads it).</summary>
    public DateTimeOffset LastAliveAt { get; private set; } = DateTimeOffset.UtcNow;

    /// <summary>True while a job's handler runs.</summary>
    public bool IsRunningJob => Volatile.Read(ref _running) > 0;

    public Task RunAsync(CancellationToken cancellationToken) => RunAsync(cancellationToken, cancellationToken);

    /// <summary>
    /// Takes jobs until <paramref name="stopTaking"/> fires (SIGTERM); a job already running continues until it ends or
    /// <paramref name="abortWork"/> fires (the grace period ran out). An aborted job is handed back: its status goes
    /// back to <c>queued</c> and its lease is released, so another agent takes it over at once (resuming from the
    /// job's checkpoints) instead of waiting for the lease to lapse.
    /// </summary>
    public async Task RunAsync(CancellationToken stopTaking, CancellationToken abortWork)
    {
        Lease.Validate();
        string? lastProblem = null;
        while (!stopTaking.IsCancellationRequested)
        {
            LastAliveAt = DateTimeOffset.UtcNow;
            var ran = false;
            try
            {
                foreach (var job in await _jobs.ListOpenAsync(stopTaking))
                {
                    if (stopTaking.IsCancellationRequested)
                    {
                        break;
                    }

                    // After a job, list the queue again: a job enqueued meanwhile that sorts first (an earlier
                    // variant of a sweep) goes before the rest of this older listing.
                    if (await TryRunAsync(job, abortWork))
                    {
                        ran = true;
                        break;
                    }
                }

                lastProblem = null;
            }
            catch (OperationCanceledException) when (stopTaking.IsCancellationRequested || abortWork.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                var problem = StorageFailure.Describe(e) is null ? $"{e.GetType().Name}: {e.Message}" : e.Message;
                if (problem != lastProblem)
                {
                    Log(problem); // once per distinct problem, not once per poll
                }

                lastProblem = problem;
            }

            if (!ran)
            {
                try
                {
                    await Task.Delay(PollInterval, stopTaking);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// Runs the job if this agent can claim it: false when another agent's lease holds it (whatever the clocks say: the
    /// lease lives on the service), when it is finished, or when this agent has no handler for its type.
    /// </summary>
    public async Task<bool> TryRunAsync(GpuJobRef id, CancellationToken abortWork)
    {
        if (await KnownJobAsync(id, abortWork) is not { } job || !_handlers.TryGetValue(job.Work.Type, out var handler))
        {
            return false;
        }

        var clock = Stopwatch.StartNew();
        var lease = await _services.Store.TryAcquireLeaseAsync(GpuJobStore.StatusBlob(id), Lease.Duration, abortWork);
        if (lease is null)
        {
            return false;
        }

        GpuJobStatus? running = null; // null again once the final status is being written: heartbeats then write nothing
        string? cancelReason = null;
        string? progress = null;
        using var statusGate = new SemaphoreSlim(1, 1);
        using var work = CancellationTokenSource.CreateLinkedTokenSource(abortWork);
        var keeper = new LeaseKeeper(lease, clock, Lease, async ct =>
        {
            await statusGate.WaitAsync(ct);
            try
            {
                if (running is not null)
                {
                    await _jobs.TryWriteStatusAsync(id, running with { UpdatedAt = DateTimeOffset.UtcNow, Progress = progress }, lease, ct);
                }
            }
            finally
            {
                statusGate.Release();
            }

            cancelReason ??= (await _services.Runs.GetAsync(job.RunId, ct))?.Record.Status == RunStatus.Cancelled
                ? $"run '{job.RunId}' was cancelled; the job was stopped"
                : await _jobs.CancelRequestAsync(id, ct) is { } asked ? $"stopped: {asked}" : null;
            if (cancelReason is not null)
            {
                await work.CancelAsync(); // wf cancel, or the step stopped waiting: do not train for hours for nobody
            }
        }, Log);
        await using var release = new LeaseRelease(keeper, lease);
        using var lostStopsWork = keeper.Lost.Register(work.Cancel);

        var status = await _jobs.GetStatusAsync(id, abortWork) ?? new GpuJobStatus(id.Id, GpuJobStates.Queued, DateTimeOffset.UtcNow);
        if (GpuJobStates.IsFinished(status.State))
        {
            await _jobs.CloseAsync(id, abortWork); // finished, but still on the queue index (its agent died right after the status)
            return false;
        }

        var now = DateTimeOffset.UtcNow;
        running = status with
        {
            State = GpuJobStates.Running,
            UpdatedAt = now,
            Progress = null,
            Error = null,
            Claims = [.. ClosePreviousClaim(status), new GpuJobClaim(AgentId, now)],
        };
        if (!await _jobs.TryWriteStatusAsync(id, running, lease, abortWork))
        {
            return false;
        }

        Log($"running {job.Work.Type} job {id} (claim {running.Claims.Count})");
        var queueWait = running.Claims[0].StartedAt - job.EnqueuedAt;
        EngineTelemetry.GpuJobQueueWait.Record(Math.Max(0, queueWait.TotalSeconds), new KeyValuePair<string, object?>("type", job.Work.Type));
        using var span = EngineTelemetry.Source.StartActivity($"wf.gpu_job {job.Work.Type}");
        span?.SetTag("wf.run_id", job.RunId);
        span?.SetTag("wf.step", job.Work.Step);
        span?.SetTag("wf.job_id", id.Id);
        span?.SetTag("wf.queue_wait_s", Math.Round(queueWait.TotalSeconds, 3));
        var watch = Stopwatch.StartNew();

        GpuJobStatus? final;
        Interlocked.Increment(ref _running);
        try
        {
            var output = await JobExecution.RunAsync(_services, handler, job.Work, p =>
            {
                progress = p;
                LastAliveAt = DateTimeOffset.UtcNow;
            }, work.Token);
            final = Finish(running, GpuJobStates.Succeeded, ClaimEndings.Succeeded) with { Output = output };
        }
        catch (Exception) when (keeper.IsLost)
        {
            final = null; // the lease is no longer certainly ours: write nothing; whoever claims the job next records how this claim ended
        }
        catch (OperationCanceledException) when (abortWork.IsCancellationRequested)
        {
            // Agent stopping after its grace period: hand the job back now (queued again, lease released) so another
            // agent resumes it from its checkpoints without waiting for the lease to lapse.
            final = Finish(running, GpuJobStates.Queued, $"{ClaimEndings.HandedBack} at shutdown after {watch.Elapsed.TotalSeconds:0}s (last: {progress ?? "no progress"})");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var error = cancelReason ?? $"{e.GetType().Name}: {e.Message}";
            final = Finish(running, GpuJobStates.Failed, $"{ClaimEndings.Failed}: {error}") with { Error = error };
        }
        finally
        {
            keeper.WorkEnded();
            Interlocked.Decrement(ref _running);
        }

        await statusGate.WaitAsync();
        running = null;
        statusGate.Release();
        if (final is not null && !await WriteFinalAsync(id, final, keeper, lease))
        {
            final = null;
        }

        EngineTelemetry.GpuJobDuration.Record(watch.Elapsed.TotalSeconds, new("type", job.Work.Type), new("outcome", final?.State ?? "lease-lost"));
        span?.SetTag("wf.outcome", final?.State ?? "lease-lost");
        if (final is null)
        {
            LeasesLost++;
            _lostLeases[id.Id] = $"{ClaimEndings.LeaseLost}: {keeper.LostReason ?? "the final status could not be written while the lease was certain"}; the work was stopped";
            Log($"{job.Work.Type} job {id}: {_lostLeases[id.Id]}; it goes back to the queue");
            return true;
        }

        if (final.State == GpuJobStates.Queued)
        {
            JobsHandedBack++;
            Log($"handed {job.Work.Type} job {id} back (shutdown)");
            return true;
        }

        JobsRun++;
        if (final.State == GpuJobStates.Failed)
        {
            span?.SetStatus(ActivityStatusCode.Error, final.Error);
        }

        await TryAsync(() => _jobs.CloseAsync(id, CancellationToken.None), "take it off the queue index (the next agent will)");
        await TryAsync(() => _services.Client.RaiseEventAsync(new OrchestrationInstance { InstanceId = job.RunId }, job.EventName, final.State),
            $"raise {job.EventName} (the orchestration polls the status too)");
        Log($"{job.Work.Type} job {id} {final.State}{(final.Error is null ? "" : ": " + final.Error)}");
        return true;
    }

    /// <summary>A job record is immutable once enqueued: read (verified) once per agent.</summary>
    private async Task<GpuJob?> KnownJobAsync(GpuJobRef id, CancellationToken cancellationToken)
    {
        if (_known.TryGetValue(id.Id, out var job))
        {
            return job;
        }

        job = await _jobs.GetAsync(id, cancellationToken);
        return job is null ? null : _known[id.Id] = job;
    }

    /// <summary>The claims with the last one ended, when its agent never wrote an ending (it lost its lease, was killed or cut off).</summary>
    private IReadOnlyList<GpuJobClaim> ClosePreviousClaim(GpuJobStatus status)
    {
        if (status.Claims.Count == 0 || status.Claims[^1].EndedAt is not null)
        {
            return status.Claims;
        }

        var open = status.Claims[^1];
        var ended = open.Agent == AgentId && _lostLeases.TryRemove(status.JobId, out var why)
            ? why
            : $"{ClaimEndings.Lapsed}: {open.Agent} stopped renewing its lease (killed, or cut off from storage)";
        return [.. status.Claims.Take(status.Claims.Count - 1), open with { EndedAt = status.UpdatedAt, Ended = ended }];
    }

    private static GpuJobStatus Finish(GpuJobStatus running, string state, string ended)
    {
        var now = DateTimeOffset.UtcNow;
        return running with
        {
            State = state,
            UpdatedAt = now,
            Progress = null,
            Claims = [.. running.Claims.Take(running.Claims.Count - 1), running.Claims[^1] with { EndedAt = now, Ended = ended }],
        };
    }

    /// <summary>The final status, written while the lease is certainly ours; retried through storage blips until then.</summary>
    private async Task<bool> WriteFinalAsync(GpuJobRef id, GpuJobStatus final, LeaseKeeper keeper, IArtifactLease lease)
    {
        for (var attempt = 1; !keeper.IsLost; attempt++)
        {
            try
            {
                return await _jobs.TryWriteStatusAsync(id, final, lease, keeper.Lost);
            }
            catch (Exception e) when (e is not OutOfMemoryException && !keeper.IsLost)
            {
                Log($"job {id}: writing its final status failed ({e.Message}); retrying while the lease is certain ({keeper.CertainFor.TotalSeconds:0}s)");
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(Math.Min(5, attempt)), keeper.Lost);
                }
                catch (OperationCanceledException)
                {
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        return false;
    }

    private async Task TryAsync(Func<Task> action, string what)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log($"could not {what}: {e.Message}");
        }
    }

    private void Log(string message) => _log?.WriteLine($"gpu-agent {AgentId}: {message}");

    /// <summary>Stops renewing, then releases the lease (when it is still ours), whatever happened.</summary>
    private sealed class LeaseRelease(LeaseKeeper keeper, IArtifactLease lease) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            var lost = keeper.IsLost;
            await keeper.DisposeAsync();
            if (!lost)
            {
                try
                {
                    await lease.ReleaseAsync();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // unreachable storage: the lease lapses on its own
                }
            }
        }
    }
}
