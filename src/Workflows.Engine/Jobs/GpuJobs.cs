using System.Text.Json;
using Workflows.Artifacts.Store;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Jobs;

/// <summary>One attempt of a GPU step, as a job in the store: <see cref="Name"/> is <c>&lt;step&gt;.&lt;attempt&gt;</c>.</summary>
public sealed record GpuJobRef(string RunId, string Name)
{
    /// <summary>How people and events name it: <c>&lt;run&gt;.&lt;step&gt;.&lt;attempt&gt;</c>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    [Newtonsoft.Json.JsonIgnore]
    public string Id => $"{RunId}.{Name}";

    public override string ToString() => Id;
}

/// <summary>A unit of GPU work, enqueued by a short activity and run by a GPU agent (jobs run for days; an activity that long would be re-delivered).</summary>
public sealed record GpuJob(string RunId, string Name, string EventName, DateTimeOffset EnqueuedAt, StepJob Work)
{
    [System.Text.Json.Serialization.JsonIgnore]
    [Newtonsoft.Json.JsonIgnore]
    public GpuJobRef Ref => new(RunId, Name);

    [System.Text.Json.Serialization.JsonIgnore]
    [Newtonsoft.Json.JsonIgnore]
    public string JobId => Ref.Id;
}

public static class GpuJobStates
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    public static bool IsFinished(string state) => state is Succeeded or Failed;
}

/// <summary>Why an agent's claim on a job ended.</summary>
public static class ClaimEndings
{
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    /// <summary>The agent stopped (SIGTERM) and its grace period ran out: status queued again, lease released.</summary>
    public const string HandedBack = "handed back";

    /// <summary>The agent could not renew its lease for too long: it stopped the work before the lease could lapse.</summary>
    public const string LeaseLost = "lease lost";

    /// <summary>Found by the next agent: the claim's lease lapsed with no ending written (the agent was killed, or cut off from storage).</summary>
    public const string Lapsed = "lease lapsed";
}

/// <summary>One agent's time on a job, from claiming it to letting go; <c>wf status RUN</c> lists them.</summary>
/// <param name="Ended">Why it ended (<see cref="ClaimEndings"/>, with detail); null while the agent holds it.</param>
public sealed record GpuJobClaim(string Agent, DateTimeOffset StartedAt, DateTimeOffset? EndedAt = null, string? Ended = null);

/// <summary>A job's status blob: its state, the last heartbeat, every claim, and the output or error once finished.</summary>
public sealed record GpuJobStatus(string JobId, string State, DateTimeOffset UpdatedAt, StepOutput? Output = null, string? Error = null,
    string? Progress = null, IReadOnlyList<GpuJobClaim>? Claims = null)
{
    public IReadOnlyList<GpuJobClaim> Claims { get; init; } = Claims ?? [];

    /// <summary>The agent holding the job now (its claim has no end), or null.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    [Newtonsoft.Json.JsonIgnore]
    public string? Agent => Claims.Count > 0 && Claims[^1].EndedAt is null ? Claims[^1].Agent : null;

    /// <summary>The last claim's agent, whether or not it still holds the job.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    [Newtonsoft.Json.JsonIgnore]
    public string? LastAgent => Claims.Count > 0 ? Claims[^1].Agent : null;
}

/// <summary>
/// Jobs as blobs. <c>gpu-jobs/&lt;run&gt;/&lt;step&gt;.&lt;attempt&gt;/job.json</c> (create-only: a re-delivered enqueue
/// is harmless) and <c>status.json</c>, which an agent leases while it runs the job: the lease is its heartbeat, and
/// every status write is conditioned on that lease, so an agent that lost it can never overwrite the new holder's.
/// <c>gpu-queue/&lt;run&gt;/&lt;step&gt;.&lt;attempt&gt;</c> (empty) lists the jobs not finished yet: agents poll that
/// index, so a poll costs one listing of the open jobs however many jobs ever ran. <c>cancel</c> beside the status asks
/// the agent to stop (the step gave up waiting for it).
/// </summary>
public sealed class GpuJobStore(IArtifactStore store)
{
    public const string Root = "gpu-jobs/";
    public const string QueueRoot = "gpu-queue/";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public IArtifactStore Store { get; } = store;

    public static string Folder(GpuJobRef job) => $"{Root}{job.RunId}/{job.Name}/";
    public static string JobBlob(GpuJobRef job) => Folder(job) + "job.json";
    public static string StatusBlob(GpuJobRef job) => Folder(job) + "status.json";
    public static string CancelBlob(GpuJobRef job) => Folder(job) + "cancel";
    public static string QueueBlob(GpuJobRef job) => $"{QueueRoot}{job.RunId}/{job.Name}";

    /// <summary>Creates whatever of job, status and queue entry does not exist yet (in that order); true when this call created the job.</summary>
    public async Task<bool> EnqueueAsync(GpuJob job, CancellationToken cancellationToken = default)
    {
        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(job, Json));
        var created = await Store.TryPutAsync(JobBlob(job.Ref), body, WriteCondition.IfNotExists, cancellationToken) is not null;
        using var status = Serialize(new GpuJobStatus(job.JobId, GpuJobStates.Queued, DateTimeOffset.UtcNow));
        await Store.TryPutAsync(StatusBlob(job.Ref), status, WriteCondition.IfNotExists, cancellationToken);
        await Store.TryPutAsync(QueueBlob(job.Ref), Stream.Null, WriteCondition.IfNotExists, cancellationToken);
        return created;
    }

    /// <summary>The job, verified against the SHA-256 recorded when it was written and against its own name.</summary>
    public async Task<GpuJob?> GetAsync(GpuJobRef job, CancellationToken cancellationToken = default)
    {
        var read = await ReadAsync<GpuJob>(JobBlob(job), cancellationToken);
        return read is null || read.Ref == job ? read : throw new InvalidDataException($"{JobBlob(job)} holds job '{read.JobId}', not '{job.Id}'");
    }

    public async Task<GpuJobStatus?> GetStatusAsync(GpuJobRef job, CancellationToken cancellationToken = default)
    {
        var read = await ReadAsync<GpuJobStatus>(StatusBlob(job), cancellationToken);
        return read is null || read.JobId == job.Id ? read : throw new InvalidDataException($"{StatusBlob(job)} holds the status of '{read.JobId}', not '{job.Id}'");
    }

    /// <summary>Writes the status only while <paramref name="lease"/> holds it; false when the lease is no longer ours.</summary>
    public async Task<bool> TryWriteStatusAsync(GpuJobRef job, GpuJobStatus status, IArtifactLease lease, CancellationToken cancellationToken = default)
    {
        using var body = Serialize(status);
        return await Store.TryPutAsync(StatusBlob(job), body, WriteCondition.WhileLeased(lease.LeaseId), cancellationToken) is not null;
    }

    /// <summary>Takes a finished job off the queue index.</summary>
    public Task CloseAsync(GpuJobRef job, CancellationToken cancellationToken = default) => Store.DeleteAsync(QueueBlob(job), cancellationToken);

    /// <summary>Asks the agent running the job to stop it (the step gave up waiting).</summary>
    public async Task RequestCancelAsync(GpuJobRef job, string reason, CancellationToken cancellationToken = default)
    {
        using var body = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(reason));
        await Store.TryPutAsync(CancelBlob(job), body, WriteCondition.IfNotExists, cancellationToken);
    }

    public async Task<string?> CancelRequestAsync(GpuJobRef job, CancellationToken cancellationToken = default) =>
        await Store.TryReadVerifiedAsync(CancelBlob(job), cancellationToken) is { } b ? System.Text.Encoding.UTF8.GetString(b.Content) : null;

    /// <summary>The jobs not finished yet, oldest run first: one listing of the queue index.</summary>
    public async Task<IReadOnlyList<GpuJobRef>> ListOpenAsync(CancellationToken cancellationToken = default)
    {
        var open = new List<GpuJobRef>();
        await foreach (var blob in Store.ListAsync(QueueRoot, cancellationToken))
        {
            var parts = blob.Name[QueueRoot.Length..].Split('/');
            if (parts.Length == 2)
            {
                open.Add(new GpuJobRef(parts[0], parts[1]));
            }
        }

        return open;
    }

    /// <summary>Every job of one run with its status, in name order: what <c>wf status RUN</c> shows.</summary>
    public async Task<IReadOnlyList<(GpuJob Job, GpuJobStatus? Status)>> ListForRunAsync(string runId, CancellationToken cancellationToken = default)
    {
        var found = new List<(GpuJob, GpuJobStatus?)>();
        await foreach (var blob in Store.ListAsync($"{Root}{Hosting.RunNames.ValidateRunId(runId)}/", cancellationToken))
        {
            if (blob.Name.EndsWith("/job.json", StringComparison.Ordinal))
            {
                var job = new GpuJobRef(runId, blob.Name.Split('/')[2]);
                if (await GetAsync(job, cancellationToken) is { } read)
                {
                    found.Add((read, await GetStatusAsync(job, cancellationToken)));
                }
            }
        }

        return found;
    }

    private static MemoryStream Serialize(GpuJobStatus status) => new(JsonSerializer.SerializeToUtf8Bytes(status, Json));

    private async Task<T?> ReadAsync<T>(string name, CancellationToken cancellationToken)
        where T : class
    {
        if (await Store.TryReadVerifiedAsync(name, cancellationToken) is not { } blob)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<T>(blob.Content, Json) ?? throw new InvalidDataException($"{name} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{name} is not a {typeof(T).Name}: {e.Message}", e);
        }
    }
}
