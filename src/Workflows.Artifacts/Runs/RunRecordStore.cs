using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Runs;

/// <summary>A run record with the ETag it was read at (for optimistic updates).</summary>
public sealed record StoredRunRecord(RunRecord Record, string ETag);

/// <summary>Stores run records under <c>runs/&lt;run-id&gt;/</c>: <c>experiment.yaml</c> (as submitted) and <c>run.json</c>.</summary>
public sealed class RunRecordStore(IArtifactStore store)
{
    public const string RootPrefix = "runs/";
    public const string RecordFileName = "run.json";
    public const string ExperimentFileName = "experiment.yaml";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string RunPrefix(string runId) => $"{RootPrefix}{ArtifactName.ValidateSegment(runId, nameof(runId))}/";
    public static string RecordName(string runId) => RunPrefix(runId) + RecordFileName;
    public static string ExperimentName(string runId) => RunPrefix(runId) + ExperimentFileName;

    /// <summary>
    /// Creates the run: the experiment YAML first, then run.json, both create-only. Throws
    /// <see cref="InvalidOperationException"/> when the run id is taken (a retried create with the same YAML is fine).
    /// </summary>
    public async Task<StoredRunRecord> CreateAsync(RunRecord record, string experimentYaml, CancellationToken cancellationToken = default)
    {
        var yamlBytes = Encoding.UTF8.GetBytes(experimentYaml);
        record = record with { ExperimentSha256 = Sha256Hex.Of(yamlBytes) };
        using (var yaml = new MemoryStream(yamlBytes, writable: false))
        {
            var created = await store.TryPutAsync(ExperimentName(record.RunId), yaml, WriteCondition.IfNotExists, cancellationToken).ConfigureAwait(false);
            if (created is null)
            {
                var existing = await store.GetPropertiesAsync(ExperimentName(record.RunId), cancellationToken).ConfigureAwait(false);
                if (existing?.Sha256 != Sha256Hex.Of(yamlBytes))
                {
                    throw new InvalidOperationException($"Run '{record.RunId}' already exists with a different experiment.");
                }
            }
        }
        using var body = Serialize(record);
        var stored = await store.TryPutAsync(RecordName(record.RunId), body, WriteCondition.IfNotExists, cancellationToken).ConfigureAwait(false)
                     ?? throw new InvalidOperationException($"Run '{record.RunId}' already exists.");
        return new StoredRunRecord(record, stored.ETag);
    }

    /// <summary>
    /// The run record, verified: its bytes against the SHA-256 recorded when it was written, its run id against the
    /// name it is stored under. Null when there is none.
    /// </summary>
    public async Task<StoredRunRecord?> GetAsync(string runId, CancellationToken cancellationToken = default)
    {
        if (await store.TryReadVerifiedAsync(RecordName(runId), cancellationToken).ConfigureAwait(false) is not { } got)
        {
            return null;
        }

        RunRecord? record;
        try
        {
            record = JsonSerializer.Deserialize<RunRecord>(got.Content, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Run record '{RecordName(runId)}' is not a run record: {e.Message}", e);
        }

        if (record is null || record.RunId != runId || record.SchemaVersion > RunRecord.CurrentSchemaVersion)
        {
            throw new InvalidDataException(
                $"Run record '{RecordName(runId)}' does not describe run '{runId}' (run id '{record?.RunId}', schema {record?.SchemaVersion}).");
        }

        return new StoredRunRecord(record, got.ETag);
    }

    /// <summary>
    /// The experiment file exactly as submitted, verified against the SHA-256 the run recorded at submission (and the
    /// store's own record of the blob): a changed or damaged file is refused, never run.
    /// </summary>
    public async Task<string> ReadExperimentYamlAsync(string runId, CancellationToken cancellationToken = default)
    {
        var got = await store.TryReadVerifiedAsync(ExperimentName(runId), cancellationToken).ConfigureAwait(false)
                  ?? throw new ArtifactNotFoundException(ExperimentName(runId));
        var recorded = (await GetAsync(runId, cancellationToken).ConfigureAwait(false))?.Record.ExperimentSha256;
        if (recorded is not null && recorded != got.Sha256)
        {
            throw new ArtifactCorruptedException(ExperimentName(runId), recorded, got.Sha256, null, got.Content.Length);
        }

        return Encoding.UTF8.GetString(got.Content);
    }

    /// <summary>
    /// Read-modify-write with optimistic concurrency: <paramref name="change"/> is applied to the current record and
    /// written only if nobody else wrote in between (If-Match); on a conflict it re-reads and re-applies.
    /// </summary>
    public async Task<StoredRunRecord> UpdateAsync(string runId, Func<RunRecord, RunRecord> change, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; attempt <= 20; attempt++)
        {
            var current = await GetAsync(runId, cancellationToken).ConfigureAwait(false)
                          ?? throw new InvalidOperationException($"Run '{runId}' does not exist.");
            var updated = change(current.Record);
            if (updated.RunId != runId)
            {
                throw new InvalidOperationException("A run record update may not change the run id.");
            }
            using var body = Serialize(updated);
            var stored = await store.TryPutAsync(RecordName(runId), body, WriteCondition.IfMatch(current.ETag), cancellationToken).ConfigureAwait(false);
            if (stored is not null)
            {
                return new StoredRunRecord(updated, stored.ETag);
            }
            await Task.Delay(Random.Shared.Next(5, 20 * attempt), cancellationToken).ConfigureAwait(false);
        }
        throw new InvalidOperationException($"Run '{runId}' is being updated by others too often; gave up after 20 attempts.");
    }

    /// <summary>Every run, in run-id order (chronological for ids from <see cref="RunRecord.NewRunId"/>).</summary>
    public async IAsyncEnumerable<RunRecord> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var blob in store.ListAsync(RootPrefix, cancellationToken).ConfigureAwait(false))
        {
            var parts = blob.Name.Split('/');
            if (parts.Length == 3 && parts[2] == RecordFileName
                && await GetAsync(parts[1], cancellationToken).ConfigureAwait(false) is { } stored)
            {
                yield return stored.Record;
            }
        }
    }

    private static MemoryStream Serialize(RunRecord record)
    {
        ArtifactName.ValidateSegment(record.RunId, nameof(record.RunId));
        return new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, Json), writable: false);
    }
}
