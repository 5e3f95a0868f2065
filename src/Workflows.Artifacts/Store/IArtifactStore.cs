namespace Workflows.Artifacts.Store;

/// <summary>
/// The blob store as the domain code sees it: named byte streams under validated names (<see cref="ArtifactName"/>),
/// each stored with its SHA-256. One implementation, <see cref="BlobArtifactStore"/> on Azure Blob Storage (Azurite
/// locally); there is deliberately no in-memory or file-system twin, so tests exercise the production path.
/// </summary>
public interface IArtifactStore
{
    /// <summary>
    /// Uploads <paramref name="content"/> (read once, forward only, never buffered whole), replacing any blob of that
    /// name. The SHA-256 is computed while streaming and stored with the blob.
    /// </summary>
    Task<StoredArtifact> PutAsync(string name, Stream content, CancellationToken cancellationToken = default);

    /// <summary>
    /// Like <see cref="PutAsync"/>, but only when <paramref name="condition"/> holds at the moment the blob becomes
    /// visible (the condition is checked atomically by the service). Returns null when it did not hold.
    /// </summary>
    Task<StoredArtifact?> TryPutAsync(string name, Stream content, WriteCondition condition, CancellationToken cancellationToken = default);

    /// <summary>Opens the blob for streaming reads, unverified. Throws <see cref="ArtifactNotFoundException"/>.</summary>
    Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Opens the blob for streaming reads; reaching the end of the stream checks SHA-256 and length against the
    /// expected values and throws <see cref="ArtifactCorruptedException"/> (naming the blob, expected and actual hash)
    /// on a mismatch.
    /// </summary>
    Task<Stream> OpenVerifiedAsync(string name, string expectedSha256, long? expectedLength = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Downloads the whole blob into <paramref name="destination"/> with parallel ranged reads (written in order),
    /// hashing on the way. When <paramref name="expectedSha256"/> is given a mismatch throws
    /// <see cref="ArtifactCorruptedException"/> after the copy (the destination then holds untrusted bytes).
    /// </summary>
    Task<StoredArtifact> DownloadToAsync(string name, Stream destination, string? expectedSha256 = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads a small blob whole (one request: content and metadata together) and checks it against the SHA-256 the
    /// store recorded when it was written: <see cref="ArtifactCorruptedException"/> on a mismatch,
    /// <see cref="InvalidDataException"/> for a blob that carries no recorded hash. Null when the blob does not exist.
    /// For records the engine rewrites (run records, job status) whose hash is not known in advance.
    /// </summary>
    Task<VerifiedBlob?> TryReadVerifiedAsync(string name, CancellationToken cancellationToken = default);

    Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Length, stored SHA-256 and ETag, or null when the blob does not exist.</summary>
    Task<ArtifactProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>Every blob whose name starts with <paramref name="prefix"/> (empty or ending in '/'), in name order.</summary>
    IAsyncEnumerable<ArtifactProperties> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Deletes the blob; false when it did not exist.</summary>
    Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes an exclusive lease (15-60 s, renewable) on the named blob, creating an empty blob first when none exists.
    /// Returns null when someone else holds it. For mutual exclusion between processes (e.g. one agent per job).
    /// </summary>
    Task<IArtifactLease?> TryAcquireLeaseAsync(string name, TimeSpan duration, CancellationToken cancellationToken = default);
}

/// <summary>A blob's bytes, checked against the SHA-256 recorded with it, and the ETag they were read at.</summary>
public sealed record VerifiedBlob(string Name, byte[] Content, string Sha256, string ETag);

/// <summary>A blob as written: its name, byte length, SHA-256 (lower-case hex) and ETag.</summary>
public sealed record StoredArtifact(string Name, long Length, string Sha256, string ETag);

/// <summary>A blob's properties. <see cref="Sha256"/> is null for blobs not written through the store.</summary>
public sealed record ArtifactProperties(string Name, long Length, string? Sha256, string ETag, DateTimeOffset LastModified);

/// <summary>When a conditional write may happen.</summary>
public abstract record WriteCondition
{
    private WriteCondition() { }

    /// <summary>Only when no blob of that name exists (HTTP <c>If-None-Match: *</c>): first writer wins.</summary>
    public static WriteCondition IfNotExists { get; } = new NotExists();

    /// <summary>Only when the blob still has <paramref name="etag"/> (optimistic concurrency for read-modify-write).</summary>
    public static WriteCondition IfMatch(string etag) => new Match(etag);

    /// <summary>
    /// Only while <paramref name="leaseId"/> holds the blob's lease (checked by the service): a writer that lost its
    /// lease, for however short a time, can no longer overwrite what the new holder writes.
    /// </summary>
    public static WriteCondition WhileLeased(string leaseId) => new Leased(leaseId);

    public sealed record NotExists : WriteCondition;

    public sealed record Match(string ETag) : WriteCondition;

    public sealed record Leased(string LeaseId) : WriteCondition;
}

/// <summary>An exclusive lease on a blob; disposing releases it.</summary>
public interface IArtifactLease : IAsyncDisposable
{
    string BlobName { get; }
    string LeaseId { get; }
    Task RenewAsync(CancellationToken cancellationToken = default);

    /// <summary>Renews; false when the lease is no longer ours (expired and taken, broken). Throws when storage cannot be reached.</summary>
    Task<bool> TryRenewAsync(CancellationToken cancellationToken = default);
    Task ReleaseAsync(CancellationToken cancellationToken = default);
}
