using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Store;

namespace Workflows.Engine.Steps;

/// <summary>Publishes a manifest assembled from blobs written by several activities (fan-out items).</summary>
public static class ManifestPublisher
{
    public static Task<PublishResult> PublishAsync(EngineServices services, ArtifactKey key, string runId, IReadOnlyList<ManifestEntry> entries,
        IReadOnlyDictionary<string, string>? properties)
    {
        var manifest = new Manifest
        {
            Activity = key.Activity,
            ActivityVersion = key.ActivityVersion,
            KeyHash = key.Hash,
            AttemptId = NewAttemptId(),
            Producer = services.Producer(runId),
            CreatedAt = DateTimeOffset.UtcNow,
            Entries = [.. entries.OrderBy(e => e.Path, StringComparer.Ordinal)],
            Properties = properties,
        };
        return services.Manifests.TryPublishAsync(manifest);
    }

    /// <summary>Uploads a local file under a fresh attempt folder of <paramref name="key"/> and returns its manifest entry.</summary>
    public static async Task<ManifestEntry> UploadAsync(IArtifactStore store, ArtifactKey key, string attemptId, string path, string file, CancellationToken cancellationToken = default)
    {
        var blob = $"{key.Prefix}{attemptId}/{path}";
        await using var content = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        var stored = await store.PutAsync(blob, content, cancellationToken);
        return new ManifestEntry(path, blob, stored.Length, stored.Sha256);
    }

    public static string NewAttemptId() => "attempt-" + Guid.NewGuid().ToString("N")[..16];
}
