using System.Text.Json;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.ContentAddressing;

/// <summary>Whether this writer's manifest became the published one.</summary>
public enum PublishOutcome
{
    Won,
    /// <summary>Another writer published first; <see cref="PublishResult.Manifest"/> is theirs.</summary>
    Lost,
}

/// <summary>The outcome and the manifest that is now published (ours when won, the winner's when lost).</summary>
public sealed record PublishResult(PublishOutcome Outcome, Manifest Manifest)
{
    public bool Won => Outcome == PublishOutcome.Won;
}

/// <summary>
/// Reads and publishes manifests of content-addressed outputs, and opens their blobs with hash verification.
/// </summary>
public sealed class ManifestStore(IArtifactStore store)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public IArtifactStore Store { get; } = store;

    /// <summary>Is the output for <paramref name="key"/> complete (its manifest exists)? The engine's cache check.</summary>
    public Task<bool> ExistsAsync(ArtifactKey key, CancellationToken cancellationToken = default) =>
        Store.ExistsAsync(key.ManifestName, cancellationToken);

    /// <summary>The published manifest, or null when the output does not exist (yet). The manifest's own bytes are verified too.</summary>
    public async Task<Manifest?> TryGetAsync(ArtifactKey key, CancellationToken cancellationToken = default)
    {
        var properties = await Store.GetPropertiesAsync(key.ManifestName, cancellationToken).ConfigureAwait(false);
        if (properties is null)
        {
            return null;
        }
        using var buffer = new MemoryStream();
        try
        {
            await Store.DownloadToAsync(key.ManifestName, buffer, properties.Sha256, cancellationToken).ConfigureAwait(false);
        }
        catch (ArtifactNotFoundException)
        {
            return null;
        }
        buffer.Position = 0;
        var manifest = await JsonSerializer.DeserializeAsync<Manifest>(buffer, Json, cancellationToken).ConfigureAwait(false)
                       ?? throw new InvalidDataException($"Manifest '{key.ManifestName}' is empty.");
        if (manifest.KeyHash != key.Hash || manifest.Activity != key.Activity)
        {
            throw new InvalidDataException($"Manifest '{key.ManifestName}' describes {manifest.Activity}/{manifest.KeyHash}, not {key}.");
        }
        manifest.Validate();
        return manifest;
    }

    /// <summary>
    /// Publishes <paramref name="manifest"/> with <c>If-None-Match: *</c>: of any number of concurrent writers exactly
    /// one wins. Every entry must already exist with the promised length and hash, so nothing partial is published.
    /// </summary>
    public async Task<PublishResult> TryPublishAsync(Manifest manifest, CancellationToken cancellationToken = default)
    {
        manifest.Validate();
        var key = manifest.Key;
        foreach (var entry in manifest.Entries)
        {
            var p = await Store.GetPropertiesAsync(entry.Blob, cancellationToken).ConfigureAwait(false);
            if (p is null || p.Length != entry.Length || (p.Sha256 is not null && p.Sha256 != entry.Sha256))
            {
                throw new InvalidOperationException(
                    $"Refusing to publish {key}: blob '{entry.Blob}' is {(p is null ? "missing" : "not what the manifest says")}.");
            }
        }
        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(manifest, Json), writable: false);
        var created = await Store.TryPutAsync(key.ManifestName, body, WriteCondition.IfNotExists, cancellationToken).ConfigureAwait(false);
        if (created is not null)
        {
            return new PublishResult(PublishOutcome.Won, manifest);
        }
        var winner = await TryGetAsync(key, cancellationToken).ConfigureAwait(false)
                     ?? throw new InvalidOperationException($"Manifest of {key} was reported to exist but cannot be read.");
        return new PublishResult(PublishOutcome.Lost, winner);
    }

    /// <summary>Starts writing the output for <paramref name="key"/> under a fresh attempt id.</summary>
    public ArtifactWriter BeginWrite(ArtifactKey key, string producer) => new(this, key, producer);

    /// <summary>Streams one entry; reading to the end verifies SHA-256 and length (<see cref="ArtifactCorruptedException"/>).</summary>
    public Task<Stream> OpenVerifiedAsync(Manifest manifest, string path, CancellationToken cancellationToken = default)
    {
        var entry = manifest[path];
        return Store.OpenVerifiedAsync(entry.Blob, entry.Sha256, entry.Length, cancellationToken);
    }

    /// <summary>
    /// Downloads one entry to a local file (for readers that need to seek, like Parquet), verified: the file appears
    /// at <paramref name="filePath"/> only when its hash matched.
    /// </summary>
    public async Task DownloadVerifiedToFileAsync(Manifest manifest, string path, string filePath, CancellationToken cancellationToken = default)
    {
        var entry = manifest[path];
        var temp = filePath + ".partial-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                var got = await Store.DownloadToAsync(entry.Blob, file, entry.Sha256, cancellationToken).ConfigureAwait(false);
                if (got.Length != entry.Length)
                {
                    throw new ArtifactCorruptedException(entry.Blob, entry.Sha256, got.Sha256, entry.Length, got.Length);
                }
            }
            File.Move(temp, filePath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }
}

/// <summary>
/// Writes the blobs of one output attempt under <c>cas/&lt;activity&gt;/&lt;hash&gt;/&lt;attempt-id&gt;/</c>, then publishes the
/// manifest. Each attempt has its own folder, so a duplicate delivery of the same activity can never overwrite the
/// blobs a published manifest points to; a losing attempt deletes its own blobs.
/// </summary>
public sealed class ArtifactWriter
{
    private readonly ManifestStore _manifests;
    private readonly Dictionary<string, ManifestEntry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    internal ArtifactWriter(ManifestStore manifests, ArtifactKey key, string producer)
    {
        _manifests = manifests;
        Key = key;
        Producer = producer;
        AttemptId = "attempt-" + Guid.NewGuid().ToString("N")[..16];
    }

    public ArtifactKey Key { get; }
    public string Producer { get; }
    public string AttemptId { get; }

    /// <summary>Where this attempt's blobs go.</summary>
    public string AttemptPrefix => $"{Key.Prefix}{AttemptId}/";

    /// <summary>Streams one blob of the output (path like <c>shards/00001.parquet</c>); may run concurrently for different paths.</summary>
    public async Task<ManifestEntry> PutAsync(string path, Stream content, CancellationToken cancellationToken = default)
    {
        var blob = ArtifactName.Combine(AttemptPrefix, path);
        var stored = await _manifests.Store.PutAsync(blob, content, cancellationToken).ConfigureAwait(false);
        var entry = new ManifestEntry(path, blob, stored.Length, stored.Sha256);
        lock (_gate)
        {
            _entries[path] = entry;
        }
        return entry;
    }

    public IReadOnlyList<ManifestEntry> Entries
    {
        get
        {
            lock (_gate)
            {
                return _entries.Values.OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
            }
        }
    }

    /// <summary>Publishes the manifest (last step). When another attempt won, this attempt's blobs are deleted.</summary>
    public async Task<PublishResult> PublishAsync(IReadOnlyDictionary<string, string>? properties = null, CancellationToken cancellationToken = default)
    {
        var manifest = new Manifest
        {
            Activity = Key.Activity,
            ActivityVersion = Key.ActivityVersion,
            KeyHash = Key.Hash,
            AttemptId = AttemptId,
            Producer = Producer,
            CreatedAt = DateTimeOffset.UtcNow,
            Entries = Entries,
            Properties = properties,
        };
        var result = await _manifests.TryPublishAsync(manifest, cancellationToken).ConfigureAwait(false);
        if (!result.Won)
        {
            await AbandonAsync(cancellationToken).ConfigureAwait(false);
        }
        return result;
    }

    /// <summary>Deletes this attempt's blobs (after losing, or when the activity fails). Best effort.</summary>
    public async Task AbandonAsync(CancellationToken cancellationToken = default)
    {
        await foreach (var blob in _manifests.Store.ListAsync(AttemptPrefix, cancellationToken).ConfigureAwait(false))
        {
            await _manifests.Store.DeleteAsync(blob.Name, cancellationToken).ConfigureAwait(false);
        }
    }
}
