using System.Text;
using System.Text.Json;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Runs;

/// <summary>One variant of a sweep: its experiment name and hash, the values that make it this variant, its run.</summary>
public sealed record SweepVariantRecord
{
    public required int Index { get; init; }

    /// <summary>The variant's experiment name (its run's <see cref="RunRecord.ExperimentName"/>).</summary>
    public required string Name { get; init; }

    public required string ExperimentHash { get; init; }

    /// <summary>The run the variant was submitted as (<c>&lt;sweep&gt;-&lt;NN&gt;</c>).</summary>
    public required string RunId { get; init; }

    /// <summary>Schema path → the label of the variant's value (<c>data.upsampling.mode</c> → <c>per-source</c>).</summary>
    public IReadOnlyDictionary<string, string> Values { get; init; } = new Dictionary<string, string>();

    /// <summary>Why the engine refused the variant's submission (the other variants were submitted regardless).</summary>
    public string? SubmitError { get; init; }

    /// <summary><c>data.upsampling.mode = none, training.lr = lr-low</c>.</summary>
    public string DescribeValues() => string.Join(", ", Values.Select(v => $"{v.Key} = {v.Value}"));
}

/// <summary>
/// A sweep: the runs one sweep file (an experiment file with <c>matrix:</c>) was submitted as, grouped under one id.
/// Stored as <c>sweeps/&lt;id&gt;/sweep.json</c> beside <c>matrix.yaml</c> (the sweep file as written). Each variant
/// is an ordinary run whose <see cref="RunRecord.SweepId"/> points back here; the engine knows nothing else of sweeps.
/// </summary>
public sealed record SweepRecord
{
    public const int CurrentSchemaVersion = 1;

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    public required string SweepId { get; init; }

    /// <summary>The sweep file's own <c>name:</c> (also the PR comment's key).</summary>
    public required string Name { get; init; }

    /// <summary>The sweep file as the submitter named it (repository-relative when known).</summary>
    public required string File { get; init; }

    public required string CodeCommit { get; init; }
    public required DateTimeOffset SubmittedAt { get; init; }
    public RunOrigin? Origin { get; init; }

    /// <summary>The variant to compare the others against: the one <c>gitops.baseline</c> names, else null (the first).</summary>
    public string? Baseline { get; init; }

    public IReadOnlyList<SweepVariantRecord> Variants { get; init; } = [];
}

/// <summary>Sweep records with the ETag they were read at.</summary>
public sealed record StoredSweepRecord(SweepRecord Record, string ETag);

/// <summary>Stores sweep records under <c>sweeps/&lt;id&gt;/</c>: <c>matrix.yaml</c> (as submitted) and <c>sweep.json</c>.</summary>
public sealed class SweepRecordStore(IArtifactStore store)
{
    public const string RootPrefix = "sweeps/";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string RecordName(string sweepId) => $"{RootPrefix}{ArtifactName.ValidateSegment(sweepId, nameof(sweepId))}/sweep.json";

    public static string MatrixName(string sweepId) => $"{RootPrefix}{ArtifactName.ValidateSegment(sweepId, nameof(sweepId))}/matrix.yaml";

    /// <summary>
    /// Creates the sweep (the YAML first, then sweep.json, both create-only). An existing sweep with the same variants
    /// (names and hashes) is returned as it is, so a redelivered submission is harmless; a different one is refused.
    /// </summary>
    public async Task<StoredSweepRecord> CreateAsync(SweepRecord record, string matrixYaml, CancellationToken cancellationToken = default)
    {
        using (var yaml = new MemoryStream(Encoding.UTF8.GetBytes(matrixYaml), writable: false))
        {
            await store.TryPutAsync(MatrixName(record.SweepId), yaml, WriteCondition.IfNotExists, cancellationToken).ConfigureAwait(false);
        }

        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(record, Json), writable: false);
        if (await store.TryPutAsync(RecordName(record.SweepId), body, WriteCondition.IfNotExists, cancellationToken).ConfigureAwait(false) is { } stored)
        {
            return new StoredSweepRecord(record, stored.ETag);
        }

        var existing = await GetAsync(record.SweepId, cancellationToken).ConfigureAwait(false)
                       ?? throw new InvalidOperationException($"Sweep '{record.SweepId}' could not be created.");
        if (!existing.Record.Variants.Select(v => (v.Name, v.ExperimentHash)).SequenceEqual(record.Variants.Select(v => (v.Name, v.ExperimentHash))))
        {
            throw new InvalidOperationException($"Sweep '{record.SweepId}' already exists with other variants.");
        }

        return existing;
    }

    public async Task<StoredSweepRecord?> GetAsync(string sweepId, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        StoredArtifact got;
        try
        {
            got = await store.DownloadToAsync(RecordName(sweepId), buffer, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (ArtifactNotFoundException)
        {
            return null;
        }

        var record = JsonSerializer.Deserialize<SweepRecord>(buffer.ToArray(), Json)
                     ?? throw new InvalidDataException($"Sweep record '{RecordName(sweepId)}' is empty.");
        return new StoredSweepRecord(record, got.ETag);
    }

    /// <summary>Read-modify-write with optimistic concurrency (If-Match), re-applied on a conflict.</summary>
    public async Task<StoredSweepRecord> UpdateAsync(string sweepId, Func<SweepRecord, SweepRecord> change, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; attempt <= 20; attempt++)
        {
            var current = await GetAsync(sweepId, cancellationToken).ConfigureAwait(false)
                          ?? throw new InvalidOperationException($"Sweep '{sweepId}' does not exist.");
            var updated = change(current.Record);
            using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(updated, Json), writable: false);
            if (await store.TryPutAsync(RecordName(sweepId), body, WriteCondition.IfMatch(current.ETag), cancellationToken).ConfigureAwait(false) is { } stored)
            {
                return new StoredSweepRecord(updated, stored.ETag);
            }

            await Task.Delay(Random.Shared.Next(5, 20 * attempt), cancellationToken).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"Sweep '{sweepId}' is being updated by others too often; gave up after 20 attempts.");
    }
}
