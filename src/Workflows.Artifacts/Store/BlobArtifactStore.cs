using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace Workflows.Artifacts.Store;

/// <summary>Per-block transfer checksum (integrity in transit; the end-to-end check is the SHA-256).</summary>
public enum BlockChecksum
{
    Md5,
    Crc64,
    None,
}

/// <summary>Transfer tuning. Memory held by one upload or download is about <c>BlockSizeBytes * (MaxConcurrency + 1)</c>.</summary>
public sealed record BlobArtifactStoreOptions
{
    /// <summary>Size of each staged block / downloaded range. Blobs smaller than this go up in one Put Blob.</summary>
    public int BlockSizeBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Blocks (ranges) in flight at once per upload (download).</summary>
    public int MaxConcurrency { get; init; } = 4;

    /// <summary>
    /// The transactional checksum sent with each staged block. MD5 for Azurite: without one, Azurite computes a CRC64
    /// in JavaScript for every block, which capped uploads at ~30 MB/s; with an MD5 it checks that instead with
    /// native crypto. Real Azure computes checksums natively, so there the cheaper CRC64 is used
    /// (<see cref="BlobArtifactStore.OpenAsync"/> picks by endpoint).
    /// </summary>
    public BlockChecksum BlockChecksum { get; init; } = BlockChecksum.Md5;

    public static BlobArtifactStoreOptions Default { get; } = new();
}

/// <summary>
/// <see cref="IArtifactStore"/> on Azure Blob Storage (block blobs in one container). Uploads read the source once,
/// block by block, hash it with SHA-256 on the way, stage up to <see cref="BlobArtifactStoreOptions.MaxConcurrency"/>
/// blocks in parallel, and commit the block list with the hash in the blob's metadata and the write condition, so the
/// blob, its hash and the conditional check become visible in one atomic step.
/// </summary>
public sealed class BlobArtifactStore : IArtifactStore
{
    /// <summary>Blob metadata key holding the lower-case hex SHA-256 of the content.</summary>
    public const string Sha256MetadataKey = "sha256";

    /// <summary>The container used when none is named.</summary>
    public const string DefaultContainerName = "workflows";

    private readonly BlobArtifactStoreOptions _options;

    public BlobArtifactStore(BlobContainerClient container, BlobArtifactStoreOptions? options = null)
    {
        Container = container;
        _options = options ?? BlobArtifactStoreOptions.Default;
        if (_options.BlockSizeBytes is < 64 * 1024 or > 256 * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "BlockSizeBytes must be between 64 KiB and 256 MiB.");
        }
        if (_options.MaxConcurrency is < 1 or > 64)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "MaxConcurrency must be between 1 and 64.");
        }
    }

    public BlobContainerClient Container { get; }

    /// <summary>Connects to <paramref name="connection"/> and creates the container when it does not exist yet.</summary>
    public static async Task<BlobArtifactStore> OpenAsync(
        StorageConnection connection,
        string containerName = DefaultContainerName,
        BlobArtifactStoreOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var container = connection.CreateBlobServiceClient().GetBlobContainerClient(ValidateContainerName(containerName));
        try
        {
            await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status == 0)
        {
            throw StorageConnection.Unreachable(connection, e); // no HTTP answer at all (connection refused, DNS, TLS)
        }
        catch (RequestFailedException e)
        {
            throw StorageConnection.Explain(e, connection, $"creating container '{containerName}'");
        }
        catch (AggregateException e)
        {
            throw StorageConnection.Unreachable(connection, e); // the SDK's "retry failed after N tries"
        }
        catch (HttpRequestException e)
        {
            throw StorageConnection.Unreachable(connection, e);
        }
        catch (Azure.Identity.AuthenticationFailedException e)
        {
            // No identity available (no workload-identity token file, no managed identity, no az login): say which
            // setting chose identity access; the credential chain's own message lists what it tried.
            throw new StorageConfigurationException(
                $"No Entra ID token for {connection.Description}: {e.Message.Split('\n')[0].TrimEnd('.')}. " +
                $"In AKS the pod needs the workload-identity label and service account; elsewhere set {StorageConnection.ConnectionStringVariable} instead.", e);
        }
        options ??= BlobArtifactStoreOptions.Default with
        {
            BlockChecksum = connection.BlobEndpoint.IsLoopback ? BlockChecksum.Md5 : BlockChecksum.Crc64,
        };
        return new BlobArtifactStore(container, options);
    }

    /// <summary>Azure's container rule: 3-63 characters of lower-case letters, digits and single inner hyphens.</summary>
    public static string ValidateContainerName(string name)
    {
        var ok = name.Length is >= 3 and <= 63
                 && name.All(c => c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-')
                 && name[0] != '-' && name[^1] != '-' && !name.Contains("--", StringComparison.Ordinal);
        return ok ? name : throw new ArgumentException($"Invalid container name '{name}': use 3-63 lower-case letters, digits and single hyphens.", nameof(name));
    }

    /// <summary>Where this store lives, safe to print: the container's URL without any query string (so never a SAS).</summary>
    public string Location => Container.Uri.GetLeftPart(UriPartial.Path);

    public async Task<StoredArtifact> PutAsync(string name, Stream content, CancellationToken cancellationToken = default) =>
        (await Guard($"writing '{name}'", () => UploadAsync(name, content, condition: null, cancellationToken)).ConfigureAwait(false))!;

    public Task<StoredArtifact?> TryPutAsync(string name, Stream content, WriteCondition condition, CancellationToken cancellationToken = default) =>
        Guard($"writing '{name}'", () => UploadAsync(name, content, condition ?? throw new ArgumentNullException(nameof(condition)), cancellationToken));

    /// <summary>
    /// Runs one storage call; a service that cannot be used at all (no answer, connection reset, container gone) becomes
    /// a <see cref="StorageUnavailableException"/> naming the endpoint, the container and what was being done, instead
    /// of the SDK's "Retry failed after 4 tries" or "The response ended prematurely".
    /// </summary>
    private async Task<T> Guard<T>(string doing, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (Exception e) when (StorageFailure.Describe(e) is { } why)
        {
            throw StorageFailure.Unavailable(why, Container, doing, e);
        }
    }

    private async Task<StoredArtifact?> UploadAsync(string name, Stream content, WriteCondition? condition, CancellationToken cancellationToken)
    {
        ArtifactName.Validate(name);
        ArgumentNullException.ThrowIfNull(content);
        var blob = Container.GetBlockBlobClient(name);
        var conditions = condition switch
        {
            null => null,
            WriteCondition.NotExists => new BlobRequestConditions { IfNoneMatch = ETag.All },
            WriteCondition.Match m => new BlobRequestConditions { IfMatch = new ETag(m.ETag) },
            WriteCondition.Leased l => new BlobRequestConditions { LeaseId = l.LeaseId },
            _ => throw new ArgumentOutOfRangeException(nameof(condition)),
        };
        // Cheap early exit for a create that would lose anyway; the condition on the final commit is what is atomic.
        if (condition is WriteCondition.NotExists && (await blob.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value)
        {
            return null;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var blockSize = _options.BlockSizeBytes;
        var first = ArrayPool<byte>.Shared.Rent(blockSize);
        int firstLength;
        try
        {
            firstLength = await ReadFullAsync(content, first.AsMemory(0, blockSize), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(first);
            throw;
        }
        hash.AppendData(first, 0, firstLength);
        if (firstLength < blockSize)
        {
            // Fits in one block: a single Put Blob carries content, hash metadata and condition together.
            var sha = Convert.ToHexStringLower(hash.GetHashAndReset());
            try
            {
                using var body = new MemoryStream(first, 0, firstLength, writable: false);
                var response = await blob.UploadAsync(body, new BlobUploadOptions { Metadata = Metadata(sha), Conditions = conditions }, cancellationToken).ConfigureAwait(false);
                return new StoredArtifact(name, firstLength, sha, response.Value.ETag.ToString());
            }
            catch (RequestFailedException e) when (IsConditionFailure(e, condition))
            {
                return null;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(first);
            }
        }
        return await UploadBlocksAsync(blob, name, content, first, hash, conditions, condition, cancellationToken).ConfigureAwait(false);
    }

    private async Task<StoredArtifact?> UploadBlocksAsync(
        BlockBlobClient blob, string name, Stream content, byte[] first, IncrementalHash hash,
        BlobRequestConditions? conditions, WriteCondition? condition, CancellationToken cancellationToken)
    {
        var blockSize = _options.BlockSizeBytes;
        // Block ids are unique per upload: concurrent writers of the same blob (duplicate activity deliveries) stage
        // into the same uncommitted-block list, and shared ids would let one writer's block end up in the other's commit.
        var uploadId = Guid.NewGuid().ToString("N");
        var blockIds = new List<string>();
        var inFlight = new List<Task>();
        using var failFast = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        long total = 0;
        byte[]? current = first;
        var length = blockSize;
        try
        {
            while (current is not null)
            {
                var id = Convert.ToBase64String(Encoding.ASCII.GetBytes($"{uploadId}-{blockIds.Count:d6}"));
                blockIds.Add(id);
                total += length;
                inFlight.Add(StageAsync(blob, id, current, length, conditions?.LeaseId, failFast.Token));
                current = null; // owned by the staging task now, which returns it to the pool
                if (inFlight.Count >= _options.MaxConcurrency)
                {
                    var done = await Task.WhenAny(inFlight).ConfigureAwait(false);
                    inFlight.Remove(done);
                    await done.ConfigureAwait(false);
                }
                if (length < blockSize)
                {
                    break; // that was the short last block
                }
                var next = ArrayPool<byte>.Shared.Rent(blockSize);
                length = await ReadFullAsync(content, next.AsMemory(0, blockSize), cancellationToken).ConfigureAwait(false);
                if (length == 0)
                {
                    ArrayPool<byte>.Shared.Return(next);
                    break;
                }
                hash.AppendData(next, 0, length);
                current = next;
            }
            await Task.WhenAll(inFlight).ConfigureAwait(false);
        }
        catch
        {
            await failFast.CancelAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(inFlight).ConfigureAwait(false);
            }
            catch
            {
                // the first failure is the one worth reporting
            }
            throw;
        }

        var sha = Convert.ToHexStringLower(hash.GetHashAndReset());
        try
        {
            var response = await blob.CommitBlockListAsync(blockIds, new CommitBlockListOptions { Metadata = Metadata(sha), Conditions = conditions }, cancellationToken).ConfigureAwait(false);
            return new StoredArtifact(name, total, sha, response.Value.ETag.ToString());
        }
        catch (RequestFailedException e) when (IsConditionFailure(e, condition))
        {
            return null; // the staged blocks stay uncommitted; the service discards them after a week
        }
    }

    private async Task StageAsync(BlockBlobClient blob, string blockId, byte[] buffer, int length, string? leaseId, CancellationToken cancellationToken)
    {
        try
        {
            using var body = new MemoryStream(buffer, 0, length, writable: false);
            // A transactional checksum per block: integrity in transit; see BlobArtifactStoreOptions.BlockChecksum
            // for why it is MD5 against Azurite.
            // The MD5 is computed here in one shot over the pooled buffer (cheaper than letting the SDK re-read the
            // stream through its own incremental hasher) and handed over as precalculated.
            var stageOptions = new BlockBlobStageBlockOptions
            {
                Conditions = leaseId is null ? null : new BlobRequestConditions { LeaseId = leaseId },
                TransferValidation = _options.BlockChecksum switch
                {
                    BlockChecksum.Md5 => new UploadTransferValidationOptions
                    {
                        ChecksumAlgorithm = StorageChecksumAlgorithm.MD5,
#pragma warning disable CA5351 // MD5 here is the storage protocol's transit checksum, not a security measure (SHA-256 is)
                        PrecalculatedChecksum = MD5.HashData(buffer.AsSpan(0, length)),
#pragma warning restore CA5351
                    },
                    BlockChecksum.Crc64 => new UploadTransferValidationOptions { ChecksumAlgorithm = StorageChecksumAlgorithm.StorageCrc64 },
                    _ => new UploadTransferValidationOptions { ChecksumAlgorithm = StorageChecksumAlgorithm.None },
                },
            };
            await blob.StageBlockAsync(blockId, body, stageOptions, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<int> ReadFullAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer[filled..], cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }
            filled += n;
        }
        return filled;
    }

    private static Dictionary<string, string> Metadata(string sha256) => new() { [Sha256MetadataKey] = sha256 };

    private static bool IsConditionFailure(RequestFailedException e, WriteCondition? condition) => condition switch
    {
        WriteCondition.NotExists => e.Status == 409 && e.ErrorCode == BlobErrorCode.BlobAlreadyExists
                                   || e.Status == 412 && e.ErrorCode == BlobErrorCode.ConditionNotMet,
        WriteCondition.Match => e.Status == 412 && e.ErrorCode == BlobErrorCode.ConditionNotMet
                                || e.Status == 404,
        WriteCondition.Leased => e.Status == 412, // lease lost, expired, broken or taken by someone else
        _ => false,
    };

    public Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken = default) => Guard($"reading '{name}'", async () =>
    {
        ArtifactName.Validate(name);
        try
        {
            var response = await Container.GetBlobClient(name).DownloadStreamingAsync(new BlobDownloadOptions(), cancellationToken).ConfigureAwait(false);
            return response.Value.Content;
        }
        catch (RequestFailedException e) when (IsBlobNotFound(e))
        {
            throw new ArtifactNotFoundException(name);
        }
    });

    public Task<VerifiedBlob?> TryReadVerifiedAsync(string name, CancellationToken cancellationToken = default) => Guard<VerifiedBlob?>($"reading '{name}'", async () =>
    {
        ArtifactName.Validate(name);
        BlobDownloadResult result;
        try
        {
            result = (await Container.GetBlobClient(name).DownloadContentAsync(cancellationToken).ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException e) when (IsBlobNotFound(e))
        {
            return null;
        }

        var bytes = result.Content.ToArray();
        var actual = Sha256Hex.Of(bytes);
        var recorded = Sha256From(result.Details.Metadata)
                       ?? throw new InvalidDataException($"Artifact blob '{name}' has no recorded SHA-256 (it was not written by wf): refusing to trust it.");
        return recorded == actual
            ? new VerifiedBlob(name, bytes, actual, result.Details.ETag.ToString())
            : throw new ArtifactCorruptedException(name, recorded, actual, null, bytes.Length);
    });

    public async Task<Stream> OpenVerifiedAsync(string name, string expectedSha256, long? expectedLength = null, CancellationToken cancellationToken = default)
    {
        if (!Sha256Hex.IsValid(expectedSha256))
        {
            throw new ArgumentException($"'{expectedSha256}' is not a lower-case hex SHA-256.", nameof(expectedSha256));
        }
        var inner = await OpenReadAsync(name, cancellationToken).ConfigureAwait(false);
        return new VerifyingReadStream(inner, name, expectedSha256, expectedLength);
    }

    public Task<StoredArtifact> DownloadToAsync(string name, Stream destination, string? expectedSha256 = null, CancellationToken cancellationToken = default) =>
        Guard($"reading '{name}'", () => DownloadCoreAsync(name, destination, expectedSha256, cancellationToken));

    private async Task<StoredArtifact> DownloadCoreAsync(string name, Stream destination, string? expectedSha256, CancellationToken cancellationToken)
    {
        ArtifactName.Validate(name);
        ArgumentNullException.ThrowIfNull(destination);
        using var hashing = new HashingWriteStream(destination);
        Response response;
        try
        {
            response = await Container.GetBlobClient(name).DownloadToAsync(hashing, new BlobDownloadToOptions
            {
                TransferOptions = new StorageTransferOptions
                {
                    InitialTransferSize = _options.BlockSizeBytes,
                    MaximumTransferSize = _options.BlockSizeBytes,
                    MaximumConcurrency = _options.MaxConcurrency,
                },
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (IsBlobNotFound(e))
        {
            throw new ArtifactNotFoundException(name);
        }
        var actual = hashing.FinishHash();
        if (expectedSha256 is not null && !string.Equals(actual, expectedSha256, StringComparison.Ordinal))
        {
            throw new ArtifactCorruptedException(name, expectedSha256, actual, null, hashing.BytesWritten);
        }
        var etag = response.Headers.ETag?.ToString() ?? "";
        return new StoredArtifact(name, hashing.BytesWritten, actual, etag);
    }

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default) => Guard($"looking up '{name}'", async () =>
    {
        ArtifactName.Validate(name);
        var exists = (await Container.GetBlobClient(name).ExistsAsync(cancellationToken).ConfigureAwait(false)).Value;
        // A missing container reads as "no blob" to Exists: say so, since every blob of the store is then gone.
        return exists || await ContainerGoneAsync(cancellationToken).ConfigureAwait(false) is false ? exists : throw ContainerGone(name);
    });

    public Task<ArtifactProperties?> GetPropertiesAsync(string name, CancellationToken cancellationToken = default) => Guard<ArtifactProperties?>($"looking up '{name}'", async () =>
    {
        ArtifactName.Validate(name);
        try
        {
            var p = (await Container.GetBlobClient(name).GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            return new ArtifactProperties(name, p.ContentLength, Sha256From(p.Metadata), p.ETag.ToString(), p.LastModified);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // HEAD answers carry no error code: tell a missing blob from a missing container with one more call.
            return await ContainerGoneAsync(cancellationToken).ConfigureAwait(false) ? throw ContainerGone(name) : null;
        }
    });

    public async IAsyncEnumerable<ArtifactProperties> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArtifactName.ValidatePrefix(prefix);
        var options = new GetBlobsOptions { Prefix = prefix.Length == 0 ? null : prefix, Traits = BlobTraits.Metadata };
        var items = Container.GetBlobsAsync(options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (await Guard($"listing '{prefix}'", async () => await items.MoveNextAsync().ConfigureAwait(false)).ConfigureAwait(false))
            {
                var item = items.Current;
                yield return new ArtifactProperties(
                    item.Name,
                    item.Properties.ContentLength ?? 0,
                    Sha256From(item.Metadata),
                    item.Properties.ETag?.ToString() ?? "",
                    item.Properties.LastModified ?? DateTimeOffset.MinValue);
            }
        }
        finally
        {
            await items.DisposeAsync().ConfigureAwait(false);
        }
    }

    public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default) => Guard($"deleting '{name}'", async () =>
    {
        ArtifactName.Validate(name);
        var response = await Container.GetBlobClient(name).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken).ConfigureAwait(false);
        return response.Value;
    });

    private static bool IsBlobNotFound(RequestFailedException e) => e.Status == 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound;

    private async Task<bool> ContainerGoneAsync(CancellationToken cancellationToken) =>
        !(await Container.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value;

    private StorageUnavailableException ContainerGone(string name) =>
        StorageFailure.Unavailable(StorageFailure.ContainerGone, Container, $"reading '{name}'", null);

    public Task<IArtifactLease?> TryAcquireLeaseAsync(string name, TimeSpan duration, CancellationToken cancellationToken = default) =>
        Guard($"leasing '{name}'", () => AcquireLeaseAsync(name, duration, cancellationToken));

    private async Task<IArtifactLease?> AcquireLeaseAsync(string name, TimeSpan duration, CancellationToken cancellationToken)
    {
        ArtifactName.Validate(name);
        if (duration != Timeout.InfiniteTimeSpan && (duration < TimeSpan.FromSeconds(15) || duration > TimeSpan.FromSeconds(60)))
        {
            throw new ArgumentOutOfRangeException(nameof(duration), "A blob lease lasts 15-60 seconds (renewable) or is infinite.");
        }
        var blob = Container.GetBlobClient(name);
        if (!(await blob.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value)
        {
            // Leases live on blobs; a lock that never existed gets an empty blob. Losing this race is fine.
            await TryPutAsync(name, Stream.Null, WriteCondition.IfNotExists, cancellationToken).ConfigureAwait(false);
        }
        var lease = blob.GetBlobLeaseClient();
        try
        {
            await lease.AcquireAsync(duration, conditions: null, cancellationToken).ConfigureAwait(false);
            return new BlobArtifactLease(name, lease);
        }
        catch (RequestFailedException e) when (e.Status == 409)
        {
            return null; // LeaseAlreadyPresent: someone else holds it
        }
    }

    private static string? Sha256From(IDictionary<string, string>? metadata) =>
        metadata is not null && metadata.TryGetValue(Sha256MetadataKey, out var sha) ? sha : null;

    private sealed class BlobArtifactLease(string blobName, BlobLeaseClient lease) : IArtifactLease
    {
        private int _released;

        public string BlobName { get; } = blobName;
        public string LeaseId => lease.LeaseId;

        public async Task RenewAsync(CancellationToken cancellationToken = default) =>
            await lease.RenewAsync(cancellationToken: cancellationToken).ConfigureAwait(false);

        public async Task<bool> TryRenewAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                await lease.RenewAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412 or 404)
            {
                return false; // the lease expired and someone else took it, was broken, or the blob is gone
            }
        }

        public async Task ReleaseAsync(CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                await lease.ReleaseAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await ReleaseAsync().ConfigureAwait(false);
            }
            catch (RequestFailedException)
            {
                // already expired or broken: nothing left to release
            }
        }
    }
}
