using System.Text.Json.Nodes;
using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Activities;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Steps;

/// <summary>
/// A step that runs as a GPU job: cache check, then a short activity enqueues the job; the orchestration waits for the
/// agent's completion event raced with a durable timer, and on each timer tick polls the job's status (a safety net
/// against a lost event). A failed job is re-enqueued as a new attempt after the step's back-off; the step's timeout
/// bounds each attempt.
/// </summary>
public static class GpuJobStep
{
    public const string Enqueue = "gpu.enqueue";
    public const string Status = "gpu.status";
    public const string Version = "1";

    public static StepHandler Create(EngineServices services, string type) =>
        new(type, new Runner(services.Options.GpuJobPollInterval),
        [
            new ActivityRegistration(Enqueue, new EnqueueActivity(services)),
            new ActivityRegistration(Status, new StatusActivity(services)),
            new ActivityRegistration(ActivityNames.LookupCache, new LookupCacheActivity(services)),
        ]);

    /// <summary>
    /// Key of a job's output: step type, version, its bound parameters, the content hashes of its inputs and of the
    /// files it reads from outside the store (<see cref="RunInput.ExternalInputs"/>).
    /// </summary>
    public static ArtifactKey KeyOf(StepScope scope)
    {
        var inputs = new JsonObject(scope.Step.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));
        var hashes = scope.Inputs.ToDictionary(i => i.Key, i => i.Value.ContentHash, StringComparer.Ordinal);
        foreach (var (name, sha) in scope.Run.ExternalInputs.GetValueOrDefault(scope.Step.Type) ?? new Dictionary<string, string>())
        {
            hashes[name] = sha;
        }

        return ArtifactKey.Compute(scope.Step.Type, Version, new JsonObject { ["parameters"] = inputs }, hashes);
    }

    public static string EventName(string jobId) => "gpu-job-done:" + jobId;

    public sealed record EnqueueInput(GpuJob Job);

    private sealed class Runner(TimeSpan pollInterval) : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            var key = KeyOf(scope);
            scope.Report(p => p with { Phase = "cache check", OutputPrefix = key.Prefix, Total = 1 });
            var cached = scope.Run.MayReuseCache(scope.Step.Id)
                ? await scope.CallAsync<StepOutput?>(ActivityNames.LookupCache, new CacheQuery(scope.Step.Id, key.Activity, key.ActivityVersion, key.Hash))
                : null;
            if (cached is not null)
            {
                scope.Report(p => p with { Done = 1, CachedItems = 1 });
                return cached;
            }

            var policy = StepRetryPolicy.From(scope.Step);
            for (var attempt = 1; ; attempt++)
            {
                scope.Report(p => p with { Attempts = attempt, Phase = "queued" });
                var jobId = $"{scope.Run.RunId}.{scope.Step.Id}.{attempt}";
                var job = new GpuJob(jobId, scope.Run.RunId, scope.Step.Id, scope.Step.Type, key.Hash, EventName(jobId),
                    scope.Inputs, scope.Step.Parameters, new DateTimeOffset(scope.Now, TimeSpan.Zero),
                    Recompute: !scope.Run.MayReuseCache(scope.Step.Id));
                await scope.CallAsync<bool>(Enqueue, new EnqueueInput(job));
                var status = await WaitForJob(scope, job, policy.Timeout);
                if (status is { State: GpuJobStates.Succeeded, Output: { } output })
                {
                    scope.Report(p => p with { Done = 1, Phase = null });
                    return output with { Step = scope.Step.Id };
                }

                var error = status?.Error ?? $"the job did not finish within the step's timeout of {policy.Timeout}";
                if (attempt >= policy.MaxAttempts)
                {
                    throw new StepFailedException(scope.Step.Id, null, attempt == 1 ? error : $"{error} (after {attempt} attempts)");
                }

                await scope.DelayAsync(policy.DelayBefore(attempt + 1));
            }
        }

        /// <summary>The completion event raced with a poll timer, until the job finishes or the attempt's deadline passes.</summary>
        private async Task<GpuJobStatus?> WaitForJob(StepScope scope, GpuJob job, TimeSpan timeout)
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
                var status = await scope.CallAsync<GpuJobStatus?>(Status, job.JobId);
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

    private sealed class EnqueueActivity(EngineServices services) : AsyncTaskActivity<EnqueueInput, bool>
    {
        protected override Task<bool> ExecuteAsync(TaskContext context, EnqueueInput input) => new GpuJobStore(services.Store).EnqueueAsync(input.Job);
    }

    private sealed class StatusActivity(EngineServices services) : AsyncTaskActivity<string, GpuJobStatus?>
    {
        protected override Task<GpuJobStatus?> ExecuteAsync(TaskContext context, string input) => new GpuJobStore(services.Store).GetStatusAsync(input);
    }
}
