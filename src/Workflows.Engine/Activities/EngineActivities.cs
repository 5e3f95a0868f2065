using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Activities;

/// <summary>A change to a run record, applied by <see cref="UpdateRunActivity"/> (the orchestration cannot do I/O itself).</summary>
public sealed record RunUpdate(string RunId)
{
    public string? Status { get; init; }
    public DateTime? StartedAt { get; init; }
    public DateTime? CompletedAt { get; init; }
    public string? Error { get; init; }
    public string? InstanceId { get; init; }
    public StepUpdate? Step { get; init; }
}

public sealed record StepUpdate(string Step, string? Shard, string Status, bool Cached, string? OutputPrefix, DateTime? StartedAt, DateTime? CompletedAt, string? Error)
{
    /// <summary>The step's type (what its output holds), recorded so readers find outputs by type, not by step id.</summary>
    public string? Type { get; init; }
}

/// <summary>Applies a <see cref="RunUpdate"/> with optimistic concurrency; idempotent (a re-delivery writes the same values).</summary>
public sealed class UpdateRunActivity(EngineServices services) : AsyncTaskActivity<RunUpdate, bool>
{
    protected override async Task<bool> ExecuteAsync(TaskContext context, RunUpdate input)
    {
        var updated = await services.Runs.UpdateAsync(input.RunId, r => Apply(r, input));
        Telemetry.EngineTelemetry.RecordRunUpdate(input, updated.Record.StartedAt);
        return true;
    }

    public static RunRecord Apply(RunRecord r, RunUpdate u)
    {
        if (r.Status == RunStatus.Cancelled)
        {
            return r; // cancelled by the user: late updates from the orchestration do not resurrect it
        }

        var steps = r.Steps.ToList();
        if (u.Step is { } s)
        {
            var record = new StepRecord
            {
                Step = s.Step,
                Shard = s.Shard,
                Status = s.Status,
                Cached = s.Cached,
                OutputPrefix = s.OutputPrefix,
                StartedAt = Utc(s.StartedAt),
                CompletedAt = Utc(s.CompletedAt),
                Error = s.Error,
                Type = s.Type,
            };
            var at = steps.FindIndex(x => x.Step == s.Step);
            if (at >= 0)
            {
                steps[at] = record with { Type = record.Type ?? steps[at].Type, StartedAt = record.StartedAt ?? steps[at].StartedAt };
            }
            else
            {
                steps.Add(record);
            }
        }

        return r with
        {
            Status = u.Status is { } status ? Enum.Parse<RunStatus>(status) : r.Status,
            StartedAt = Utc(u.StartedAt) ?? r.StartedAt,
            CompletedAt = Utc(u.CompletedAt) ?? r.CompletedAt,
            Error = u.Error ?? r.Error,
            EngineInstanceId = u.InstanceId ?? r.EngineInstanceId,
            Steps = steps,
        };
    }

    private static DateTimeOffset? Utc(DateTime? t) => t is { } v ? new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)) : null;
}

/// <summary>The cache check: the published output of a key, or null. A manifest that exists is complete.</summary>
public sealed class LookupCacheActivity(EngineServices services) : AsyncTaskActivity<CacheQuery, StepOutput?>
{
    protected override async Task<StepOutput?> ExecuteAsync(TaskContext context, CacheQuery input)
    {
        var key = ArtifactKey.FromParts(input.Activity, input.ActivityVersion, input.KeyHash);
        var manifest = await services.Manifests.TryGetAsync(key);
        return manifest is null ? null : new StepOutput(input.Step, key.Activity, key.Hash, key.Prefix, manifest.ContentHash, Cached: true);
    }
}

public sealed record CacheQuery(string Step, string Activity, string ActivityVersion, string KeyHash);

/// <summary>
/// The orchestration's last call: hands the final run record to every <see cref="IRunFinishedHook"/> the worker was
/// configured with (none: nothing happens). A hook that throws fails this activity, which is retried; the run's own
/// result is not changed by it.
/// </summary>
public sealed class RunFinishedActivity(EngineServices services) : AsyncTaskActivity<string, bool>
{
    protected override async Task<bool> ExecuteAsync(TaskContext context, string runId)
    {
        if (services.RunFinishedHooks.Count == 0)
        {
            return false;
        }

        var record = (await services.Runs.GetAsync(runId))?.Record ?? throw new InvalidOperationException($"run '{runId}' has no record");
        foreach (var hook in services.RunFinishedHooks)
        {
            await hook.OnRunFinishedAsync(record);
        }

        return true;
    }
}
