using System.Diagnostics;
using DurableTask.Core;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Telemetry;

namespace Workflows.Engine.Jobs;

/// <summary>Runs one kind of GPU job (train, evaluate-...); returns the published output.</summary>
public interface IGpuJobHandler
{
    string Type { get; }

    Task<StepOutput> RunAsync(GpuJob job, Action<string> reportProgress, CancellationToken cancellationToken);
}

/// <summary>
/// Takes GPU jobs from <c>gpu-jobs/</c>: claims one with a blob lease, renews the lease every few seconds as its
/// heartbeat (a dead agent's lease lapses within <see cref="LeaseDuration"/> and another agent takes the job over),
/// runs the handler for the job's type, writes the final status, and raises the completion event to the
/// orchestration. Runs in <c>wf gpu-agent</c>, or inside <c>wf run</c> for local use.
/// </summary>
public sealed class GpuAgent(EngineServices services, IEnumerable<IGpuJobHandler> handlers, TextWriter? log = null)
{
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan RenewEvery = TimeSpan.FromSeconds(10);

    private readonly Dictionary<string, IGpuJobHandler> _handlers = handlers.ToDictionary(h => h.Type, StringComparer.Ordinal);
    private readonly GpuJobStore _jobs = new(services.Store);

    public string AgentId { get; } = services.Options.WorkerId;

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Jobs this agent finished (succeeded or failed), for tests and logs.</summary>
    public int JobsRun { get; private set; }

    /// <summary>When the job loop last went round or a job last made progress (the heartbeat's health check reads it).</summary>
    public DateTimeOffset LastAliveAt { get; private set; } = DateTimeOffset.UtcNow;

    /// <summary>True while a job's handler runs.</summary>
    public bool IsRunningJob => Volatile.Read(ref _running) > 0;

    private int _running;

    /// <summary>Jobs this agent gave back unfinished at shutdown (status <c>queued</c> again, lease released).</summary>
    public int JobsHandedBack { get; private set; }

    public Task RunAsync(CancellationToken cancellationToken) => RunAsync(cancellationToken, cancellationToken);

    /// <summary>
    /// Takes jobs until <paramref name="stopTaking"/> fires (SIGTERM); a job already running continues until it ends or
    /// <paramref name="abortWork"/> fires (the grace period ran out). An aborted job is handed back: its status goes
    /// back to <c>queued</c> and its lease is released, so another agent takes it over at once (resuming from the
    /// job's checkpoints) instead of waiting for the lease to lapse.
    /// </summary>
    public async Task RunAsync(CancellationToken stopTaking, CancellationToken abortWork)
    {
        while (!stopTaking.IsCancellationRequested)
        {
            LastAliveAt = DateTimeOffset.UtcNow;
            var ran = false;
            try
            {
                foreach (var id in await _jobs.ListOpenAsync(stopTaking))
                {
                    if (stopTaking.IsCancellationRequested)
                    {
                        break;
                    }

                    ran |= await TryRunAsync(id, abortWork);
                }
            }
            catch (OperationCanceledException) when (stopTaking.IsCancellationRequested || abortWork.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                log?.WriteLine($"gpu-agent {AgentId}: {e.Message}");
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

    /// <summary>Runs the job if no other agent holds it; false when someone else does or it is already finished.</summary>
    public async Task<bool> TryRunAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await _jobs.GetAsync(jobId, cancellationToken);
        if (job is null || !_handlers.TryGetValue(job.Type, out var handler))
        {
            return false;
        }

        await using var lease = await services.Store.TryAcquireLeaseAsync(GpuJobStore.LeaseName(jobId), LeaseDuration, cancellationToken);
        if (lease is null)
        {
            return false;
        }

        var current = await _jobs.GetStatusAsync(jobId, cancellationToken);
        if (current is not null && GpuJobStates.IsFinished(current.State))
        {
            return false;
        }

        log?.WriteLine($"gpu-agent {AgentId}: running {job.Type} job {jobId}");
        var queueWait = DateTimeOffset.UtcNow - job.EnqueuedAt;
        EngineTelemetry.GpuJobQueueWait.Record(Math.Max(0, queueWait.TotalSeconds), new KeyValuePair<string, object?>("type", job.Type));
        using var span = EngineTelemetry.Source.StartActivity($"wf.gpu_job {job.Type}");
        span?.SetTag("wf.run_id", job.RunId);
        span?.SetTag("wf.step", job.Step);
        span?.SetTag("wf.job_id", jobId);
        span?.SetTag("wf.queue_wait_s", Math.Round(queueWait.TotalSeconds, 3));
        var watch = Stopwatch.StartNew();
        Interlocked.Increment(ref _running);
        using var running = new Decrement(() => Interlocked.Decrement(ref _running));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        string? progress = null;
        var claimedAt = DateTimeOffset.UtcNow;
        var runCancelled = false;
        await _jobs.WriteStatusAsync(new GpuJobStatus(jobId, GpuJobStates.Running, AgentId, claimedAt, null, null, null, claimedAt), cancellationToken);
        var heartbeat = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(RenewEvery, stop.Token);
                await lease.RenewAsync(stop.Token);
                await _jobs.WriteStatusAsync(new GpuJobStatus(jobId, GpuJobStates.Running, AgentId, DateTimeOffset.UtcNow, null, null, progress, claimedAt), stop.Token);
                if ((await services.Runs.GetAsync(job.RunId, stop.Token))?.Record.Status == Workflows.Artifacts.Runs.RunStatus.Cancelled)
                {
                    runCancelled = true; // wf cancel: stop the job's work now rather than train for hours for nobody
                    await stop.CancelAsync();
                }
            }
        }, stop.Token);

        GpuJobStatus final;
        try
        {
            var output = await handler.RunAsync(job, p =>
            {
                progress = p;
                LastAliveAt = DateTimeOffset.UtcNow;
            }, stop.Token);
            final = new GpuJobStatus(jobId, GpuJobStates.Succeeded, AgentId, DateTimeOffset.UtcNow, output, null, null, claimedAt);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Agent stopping after its grace period: hand the job back now (queued again, lease released by the
            // `await using` above) so another agent resumes it from its checkpoints without waiting for the lease to lapse.
            await stop.CancelAsync();
            try
            {
                await heartbeat;
            }
            catch (OperationCanceledException)
            {
            }

            await _jobs.WriteStatusAsync(new GpuJobStatus(jobId, GpuJobStates.Queued, null, DateTimeOffset.UtcNow, null, null,
                $"handed back by {AgentId} at shutdown after {watch.Elapsed.TotalSeconds:0}s (last: {progress ?? "no progress"})"), CancellationToken.None);
            JobsHandedBack++;
            span?.SetTag("wf.outcome", "handed-back");
            log?.WriteLine($"gpu-agent {AgentId}: handed {job.Type} job {jobId} back (shutdown)");
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var error = runCancelled ? $"run '{job.RunId}' was cancelled; the job was stopped" : $"{e.GetType().Name}: {e.Message}";
            final = new GpuJobStatus(jobId, GpuJobStates.Failed, AgentId, DateTimeOffset.UtcNow, null, error, null, claimedAt);
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await heartbeat;
            }
            catch (OperationCanceledException)
            {
            }
        }

        await _jobs.WriteStatusAsync(final, cancellationToken);
        JobsRun++;
        EngineTelemetry.GpuJobDuration.Record(watch.Elapsed.TotalSeconds, new("type", job.Type), new("outcome", final.State));
        span?.SetTag("wf.outcome", final.State);
        if (final.State == GpuJobStates.Failed)
        {
            span?.SetStatus(ActivityStatusCode.Error, final.Error);
        }

        try
        {
            await services.Client.RaiseEventAsync(new OrchestrationInstance { InstanceId = job.RunId }, job.EventName, final.State);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The orchestration polls the status blob as well; a lost event only delays it by one poll interval.
            log?.WriteLine($"gpu-agent {AgentId}: could not raise {job.EventName}: {e.Message}");
        }

        log?.WriteLine($"gpu-agent {AgentId}: {job.Type} job {jobId} {final.State}{(final.Error is null ? "" : ": " + final.Error)}");
        return true;
    }

    private sealed class Decrement(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
