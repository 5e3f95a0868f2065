using DurableTask.Core;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Steps;

/// <summary>
/// Running a job step as a GPU job (the orchestration side): a short activity enqueues the job; the orchestration waits
/// for the agent's completion event raced with a durable timer, and on each timer tick reads the job's status (a
/// safety net against a lost event). A failed job is re-enqueued as the next attempt after the step's back-off; the
/// step's timeout bounds each attempt, and a job the step stops waiting for is asked to stop.
/// </summary>
public static class GpuJobStep
{
    public const string Enqueue = "gpu.enqueue";
    public const string Status = "gpu.status";
    public const string Cancel = "gpu.cancel";

    public sealed record CancelInput(GpuJobRef Job, string Reason);

    public static IEnumerable<ActivityRegistration> Activities(EngineServices services) =>
    [
        new(Enqueue, new Activity<GpuJob, bool>(job => new GpuJobStore(services.Store).EnqueueAsync(job))),
        new(Status, new Activity<GpuJobRef, GpuJobStatus?>(job => new GpuJobStore(services.Store).GetStatusAsync(job))),
        new(Cancel, new Activity<CancelInput, bool>(async c =>
        {
            await new GpuJobStore(services.Store).RequestCancelAsync(c.Job, c.Reason);
            return true;
        })),
    ];

    public static string EventName(string jobId) => "gpu-job-done:" + jobId;

    public static async Task<StepOutput> RunAsync(StepScope scope, StepJob work, TimeSpan pollInterval)
    {
        var policy = StepRetryPolicy.From(scope.Step);
        for (var attempt = 1; ; attempt++)
        {
            scope.Report(p => p with { Attempts = attempt, Phase = "queued" });
            var name = $"{scope.Step.Id}.{attempt}";
            var job = new GpuJob(work.RunId, name, EventName($"{work.RunId}.{name}"), new DateTimeOffset(scope.Now, TimeSpan.Zero), work);
            await scope.CallAsync<bool>(Enqueue, job);
            var status = await WaitForJob(scope, job, policy.Timeout, pollInterval);
            if (status is { State: GpuJobStates.Succeeded, Output: { } output })
            {
                scope.Report(p => p with { Done = 1, Phase = null });
                return output with { Step = scope.Step.Id };
            }

            var error = status?.Error ?? $"the job did not finish within the step's timeout of {policy.Timeout}";
            if (status is null)
            {
                await scope.CallAsync<bool>(Cancel, new CancelInput(job.Ref, error)); // never leave it running beside the next attempt
            }

            if (attempt >= policy.MaxAttempts)
            {
                throw new StepFailedException(scope.Step.Id, null, attempt == 1 ? error : $"{error} (after {attempt} attempts)");
            }

            await scope.DelayAsync(policy.DelayBefore(attempt + 1));
        }
    }

    /// <summary>The completion event raced with a poll timer, until the job finishes or the attempt's deadline passes.</summary>
    private static async Task<GpuJobStatus?> WaitForJob(StepScope scope, GpuJob job, TimeSpan timeout, TimeSpan pollInterval)
    {
        var deadline = scope.Now + timeout;
        var done = scope.WaitForEvent(job.EventName);
        var eventSeen = false;
        while (scope.Now < deadline)
        {
            using var cancelTimer = new CancellationTokenSource();
            var wait = pollInterval < deadline - scope.Now ? pollInterval : deadline - scope.Now;
            var tick = scope.DelayAsync(wait, cancelTimer.Token);
            if (eventSeen)
            {
                await tick;
            }
            else if (await Task.WhenAny(done, tick) == done)
            {
                eventSeen = true;
                cancelTimer.Cancel();
            }

            // Event or not, the status blob is the truth (an event may be lost; a poll may race the agent).
            var status = await scope.CallAsync<GpuJobStatus?>(Status, job.Ref);
            if (status is not null)
            {
                scope.Report(p => p with { Phase = status.Progress ?? status.State });
                if (GpuJobStates.IsFinished(status.State))
                {
                    return status;
                }
            }
        }

        return null;
    }
}
