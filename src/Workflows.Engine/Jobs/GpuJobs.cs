using System.Text.Json;
using Workflows.Artifacts.Store;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Jobs;

/// <summary>A unit of GPU work, enqueued by a short activity and run by a GPU agent (jobs run for days; an activity that long would be re-delivered).</summary>
public sealed record GpuJob(
    string JobId,
    string RunId,
    string Step,
    string Type,
    string KeyHash,
    string EventName,
    IReadOnlyDictionary<string, StepOutput> Inputs,
    IReadOnlyDictionary<string, string> Parameters,
    DateTimeOffset EnqueuedAt,
    bool Recompute = false);

public static class GpuJobStates
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    public static bool IsFinished(string state) => state is Succeeded or Failed;
}

/// <summary>A job's status blob: who runs it, the last heartbeat, and the output or error once finished.</summary>
/// <param name="StartedAt">When the agent now running (or last running) the job claimed it; claim time minus the job's EnqueuedAt is its queue wait.</param>
public sealed record GpuJobStatus(string JobId, string State, string? Agent, DateTimeOffset UpdatedAt, StepOutput? Output, string? Error, string? Progress,
    DateTimeOffset? StartedAt = null);

/// <summary>
/// Jobs as blobs: <c>gpu-jobs/&lt;job-id&gt;/job.json</c> (create-only, so a re-delivered enqueue activity is harmless),
/// <c>status.json</c> (overwritten by the agent), <c>lease</c> (a blob lease: the agent holding it runs the job and renews
/// it as its heartbeat; when an agent dies the lease lapses and another agent takes the job over, resuming from its checkpoints).
/// </summary>
public sealed class GpuJobStore(IArtifactStore store)
{
    public const string Root = "gpu-jobs/";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public IArtifactStore Store { get; } = store;

    public static string JobName(string jobId) => $"{Root}{jobId}/job.json";
    public static string StatusName(string jobId) => $"{Root}{jobId}/status.json";
    public static string LeaseName(string jobId) => $"{Root}{jobId}/lease";

    /// <summary>Creates the job unless it exists; true when this call created it.</summary>
    public async Task<bool> EnqueueAsync(GpuJob job, CancellationToken cancellationToken = default)
    {
        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(job, Json));
        var created = await Store.TryPutAsync(JobName(job.JobId), body, WriteCondition.IfNotExists, cancellationToken);
        if (created is not null)
        {
            await WriteStatusAsync(new GpuJobStatus(job.JobId, GpuJobStates.Queued, null, DateTimeOffset.UtcNow, null, null, null), cancellationToken);
        }

        return created is not null;
    }

    public async Task<GpuJob?> GetAsync(string jobId, CancellationToken cancellationToken = default) =>
        await ReadAsync<GpuJob>(JobName(jobId), cancellationToken);

    public async Task<GpuJobStatus?> GetStatusAsync(string jobId, CancellationToken cancellationToken = default) =>
        await ReadAsync<GpuJobStatus>(StatusName(jobId), cancellationToken);

    public async Task WriteStatusAsync(GpuJobStatus status, CancellationToken cancellationToken = default)
    {
        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(status, Json));
        await Store.PutAsync(StatusName(status.JobId), body, cancellationToken);
    }

    /// <summary>Ids of jobs whose status is not finished, oldest id first.</summary>
    public async Task<IReadOnlyList<string>> ListOpenAsync(CancellationToken cancellationToken = default)
    {
        var open = new List<string>();
        await foreach (var blob in Store.ListAsync(Root, cancellationToken))
        {
            if (!blob.Name.EndsWith("/job.json", StringComparison.Ordinal))
            {
                continue;
            }

            var id = blob.Name[Root.Length..^"/job.json".Length];
            var status = await GetStatusAsync(id, cancellationToken);
            if (status is null || !GpuJobStates.IsFinished(status.State))
            {
                open.Add(id);
            }
        }

        return open;
    }

    /// <summary>Every job of one run (job ids start with the run id), with its status, in id order: what <c>wf status RUN</c> shows.</summary>
    public async Task<IReadOnlyList<(GpuJob Job, GpuJobStatus? Status)>> ListForRunAsync(string runId, CancellationToken cancellationToken = default)
    {
        var found = new List<(GpuJob, GpuJobStatus?)>();
        await foreach (var blob in Store.ListAsync(Root, cancellationToken))
        {
            if (!blob.Name.EndsWith("/job.json", StringComparison.Ordinal) || !blob.Name.StartsWith($"{Root}{runId}.", StringComparison.Ordinal))
            {
                continue;
            }

            var id = blob.Name[Root.Length..^"/job.json".Length];
            if (await GetAsync(id, cancellationToken) is { } job)
            {
                found.Add((job, await GetStatusAsync(id, cancellationToken)));
            }
        }

        return found;
    }

    private async Task<T?> ReadAsync<T>(string name, CancellationToken cancellationToken)
    {
        try
        {
            using var buffer = new MemoryStream();
            await Store.DownloadToAsync(name, buffer, null, cancellationToken);
            return JsonSerializer.Deserialize<T>(buffer.ToArray(), Json);
        }
        catch (ArtifactNotFoundException)
        {
            return default;
        }
    }
}
