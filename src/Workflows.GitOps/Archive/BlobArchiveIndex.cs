using System.Text;
using System.Text.Json.Serialization;
using Workflows.Artifacts.Store;

namespace Workflows.GitOps.Archive;

/// <summary>One archiving: which experiment files a merge recorded, and the index it produced.</summary>
public sealed record ArchiveUpdate(IReadOnlyList<ArchivedExperiment> Recorded, JsonArchiveIndex Index, string ETag);

/// <summary>
/// The archive index in blob storage (<c>archive/index.json</c> in the engine's container): the document
/// <see cref="JsonArchiveIndex"/> reads, so <c>wf pr check-archive</c> can read a public copy of the same bytes.
/// Updated read-modify-write with optimistic concurrency on the blob's ETag (If-Match, or If-None-Match for the first
/// write): two archive jobs racing never lose each other's entries; the loser re-reads and re-applies.
/// </summary>
public sealed class BlobArchiveIndex(IArtifactStore store) : IArchiveIndex
{
    public const string BlobName = "archive/index.json";

    public async Task<(JsonArchiveIndex Index, string? ETag)> ReadAsync(CancellationToken cancellationToken = default)
    {
        // Verified against the SHA-256 recorded when it was written: a damaged index is refused, not merged into.
        return await store.TryReadVerifiedAsync(BlobName, cancellationToken).ConfigureAwait(false) is { } got
            ? (JsonArchiveIndex.Parse(Encoding.UTF8.GetString(got.Content)), got.ETag)
            : (new JsonArchiveIndex([]), null);
    }

    public async Task<IReadOnlyList<ArchivedExperiment>> ListExperimentsAsync(CancellationToken cancellationToken = default) =>
        (await ReadAsync(cancellationToken).ConfigureAwait(false)).Index.Experiments;

    /// <summary>
    /// Records each experiment: an entry with the same name and content hash gains the new runs (union, in order); a new
    /// name is added; a name archived with a different content hash is refused (archived files are immutable).
    /// </summary>
    public async Task<ArchiveUpdate> RecordAsync(IReadOnlyList<ArchivedExperiment> experiments, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; attempt <= 20; attempt++)
        {
            var (index, etag) = await ReadAsync(cancellationToken).ConfigureAwait(false);
            var merged = Merge(index.Experiments, experiments);
            var updated = new JsonArchiveIndex(merged);
            using var body = new MemoryStream(Encoding.UTF8.GetBytes(updated.ToJson()), writable: false);
            var condition = etag is null ? WriteCondition.IfNotExists : WriteCondition.IfMatch(etag);
            if (await store.TryPutAsync(BlobName, body, condition, cancellationToken).ConfigureAwait(false) is { } stored)
            {
                return new ArchiveUpdate(experiments, updated, stored.ETag);
            }

            await Task.Delay(Random.Shared.Next(5, 20 * attempt), cancellationToken).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"{BlobName} is being updated by others too often; gave up after 20 attempts");
    }

    public static IReadOnlyList<ArchivedExperiment> Merge(IReadOnlyList<ArchivedExperiment> existing, IReadOnlyList<ArchivedExperiment> added)
    {
        var list = existing.ToList();
        foreach (var e in added)
        {
            var at = list.FindIndex(x => x.Name == e.Name);
            if (at < 0)
            {
                list.Add(e);
                continue;
            }

            var old = list[at];
            if (old.ContentHash != e.ContentHash)
            {
                throw new InvalidOperationException(
                    $"experiment '{e.Name}' is archived with content hash {old.ContentHash} ({old.Path}); {e.Path} has {e.ContentHash}: archived experiments are immutable, copy it under a new name");
            }

            list[at] = old with { Runs = [.. old.Runs.Union(e.Runs, StringComparer.Ordinal)], Commit = old.Commit ?? e.Commit };
        }

        return [.. list.OrderBy(x => x.Name, StringComparer.Ordinal)];
    }
}
