using DurableTask.Core;
using Workflows.Engine.Orchestration;

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

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var ran = false;
            try
            {
                foreach (var id in await _jobs.ListOpenAsync(cancellationToken))
                {
                    ran |= await TryRunAsync(id, cancellationToken);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
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
                    await Task.Delay(PollInterval, cancellationToken);
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
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        string? progress = null;
        await _jobs.WriteStatusAsync(new GpuJobStatus(jobId, GpuJobStates.Running, AgentId, DateTimeOffset.UtcNow, null, null, null), cancellationToken);
        var heartbeat = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(RenewEvery, stop.Token);
                await lease.RenewAsync(stop.Token);
                await _jobs.WriteStatusAsync(new GpuJobStatus(jobId, GpuJobStates.Running, AgentId, DateTimeOffset.UtcNow, null, null, progress), stop.Token);
            }
        }, stop.Token);

        GpuJobStatus final;
        try
        {
            var output = await handler.RunAsync(job, p => progress = p, stop.Token);
            final = new GpuJobStatus(jobId, GpuJobStates.Succeeded, AgentId, DateTimeOffset.UtcNow, output, null, null);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw; // agent stopping: the lease lapses and another agent resumes the job from its checkpoints
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            final = new GpuJobStatus(jobId, GpuJobStates.Failed, AgentId, DateTimeOffset.UtcNow, null, $"{e.GetType().Name}: {e.Message}", null);
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
}
