using System.Security.Cryptography;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Sas;
using Workflows.Artifacts;

namespace Workflows.GitOps.Publishing;

/// <summary>How published report files are made readable by URL (docs/gitops.md weighs the two).</summary>
public enum ReportAccess
{
    /// <summary>The container allows anonymous read of blobs (not listing): plain URLs that never expire.</summary>
    PublicBlob,

    /// <summary>The container stays private; each URL carries a SAS bound to a stored access policy (revocable, expiring).</summary>
    StoredPolicySas,
}

/// <summary>Where and how report files are published. Environment: WF_REPORTS_CONTAINER, WF_REPORTS_ACCESS (public|sas), WF_REPORTS_POLICY.</summary>
public sealed record ReportPublishingOptions
{
    public string ContainerName { get; init; } = "wf-reports";
    public ReportAccess Access { get; init; } = ReportAccess.PublicBlob;

    /// <summary>The stored access policy's id (SAS mode). A container holds at most 5 policies.</summary>
    public string PolicyId { get; init; } = "wf-report-read";

    /// <summary>How long the policy (and so every URL issued under it) stays valid; it is extended when less than half is left.</summary>
    public TimeSpan PolicyLifetime { get; init; } = TimeSpan.FromDays(365);

    public static ReportPublishingOptions FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        var options = new ReportPublishingOptions();
        if (env("WF_REPORTS_CONTAINER") is { Length: > 0 } container)
        {
            options = options with { ContainerName = container };
        }

        options = env("WF_REPORTS_ACCESS") switch
        {
            null or "" or "public" => options,
            "sas" => options with { Access = ReportAccess.StoredPolicySas },
            var other => throw new ArgumentException($"WF_REPORTS_ACCESS must be 'public' or 'sas', not '{other}'"),
        };
        return env("WF_REPORTS_POLICY") is { Length: > 0 } policy ? options with { PolicyId = policy } : options;
    }
}

/// <summary>A file published for GitHub to show: its content-hashed blob name and the URL to put in the comment.</summary>
public sealed record PublishedFile(string BlobName, string Sha256, Uri Url);

/// <summary>
/// Publishes report files (heatmap PNGs, report.md/json, the archive index) to a container that GitHub can read by
/// URL. Images go under content-hashed names (<c>reports/&lt;sha256&gt;.png</c>): a name is written once and never
/// changes meaning, so a comment's image can be cached forever and re-publishing is a no-op. Never base64.
/// </summary>
public sealed class ReportPublisher
{
    private readonly ReportPublishingOptions _options;
    private bool _ready;

    public ReportPublisher(BlobServiceClient service, ReportPublishingOptions? options = null)
    {
        _options = options ?? new ReportPublishingOptions();
        Container = service.GetBlobContainerClient(_options.ContainerName);
    }

    public ReportPublisher(StorageConnection connection, ReportPublishingOptions? options = null)
        : this(connection.CreateBlobServiceClient(), options)
    {
    }

    public BlobContainerClient Container { get; }
    public ReportAccess Access => _options.Access;

    public static string ContentType(string extension) => extension.ToLowerInvariant() switch
    {
        ".png" => "image/png",
        ".json" => "application/json",
        ".md" => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    };

    /// <summary>Publishes bytes under <c>reports/&lt;sha256&gt;&lt;extension&gt;</c> (create-only) and returns the readable URL.</summary>
    public async Task<PublishedFile> PublishAsync(byte[] content, string extension, CancellationToken cancellationToken = default)
    {
        var sha = Convert.ToHexStringLower(SHA256.HashData(content));
        var name = $"reports/{sha}{extension}";
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        var blob = Container.GetBlobClient(name);
        try
        {
            await blob.UploadAsync(new BinaryData(content), new BlobUploadOptions
            {
                HttpHeaders = new BlobHttpHeaders { ContentType = ContentType(extension), CacheControl = "public, max-age=31536000, immutable" },
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            // Already published: the name is the content's hash, so it holds these bytes.
        }

        return new PublishedFile(name, sha, UrlOf(blob));
    }

    /// <summary>Writes (overwrites) a blob under a fixed name, e.g. the public copy of the archive index; returns its URL.</summary>
    public async Task<Uri> PutAsync(string name, byte[] content, CancellationToken cancellationToken = default)
    {
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        var blob = Container.GetBlobClient(name);
        await blob.UploadAsync(new BinaryData(content), new BlobUploadOptions
        {
            HttpHeaders = new BlobHttpHeaders { ContentType = ContentType(Path.GetExtension(name)), CacheControl = "no-cache" },
        }, cancellationToken).ConfigureAwait(false);
        return UrlOf(blob);
    }

    private Uri UrlOf(BlobClient blob)
    {
        if (_options.Access == ReportAccess.PublicBlob)
        {
            return blob.Uri;
        }

        if (!blob.CanGenerateSasUri)
        {
            throw new InvalidOperationException("a SAS for report URLs needs the storage account key in the connection string (stored access policies do not work with user delegation SAS)");
        }

        // No permissions or expiry in the token itself: both come from the stored policy, so deleting or changing the
        // policy revokes or extends every URL issued under it.
        return blob.GenerateSasUri(new BlobSasBuilder
        {
            BlobContainerName = Container.Name,
            BlobName = blob.Name,
            Resource = "b",
            Identifier = _options.PolicyId,
        });
    }

    private async Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (_ready)
        {
            return;
        }

        var publicAccess = _options.Access == ReportAccess.PublicBlob ? PublicAccessType.Blob : PublicAccessType.None;
        await Container.CreateIfNotExistsAsync(publicAccess, cancellationToken: cancellationToken).ConfigureAwait(false);
        var policy = (await Container.GetAccessPolicyAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
        var identifiers = policy.SignedIdentifiers.ToList();
        var changed = policy.BlobPublicAccess != publicAccess;
        if (_options.Access == ReportAccess.StoredPolicySas)
        {
            var now = DateTimeOffset.UtcNow;
            var mine = identifiers.FirstOrDefault(i => i.Id == _options.PolicyId);
            if (mine?.AccessPolicy?.PolicyExpiresOn is not { } expires || expires - now < _options.PolicyLifetime / 2)
            {
                identifiers.RemoveAll(i => i.Id == _options.PolicyId);
                identifiers.Add(new BlobSignedIdentifier
                {
                    Id = _options.PolicyId,
                    AccessPolicy = new BlobAccessPolicy { PolicyStartsOn = now.AddMinutes(-5), PolicyExpiresOn = now + _options.PolicyLifetime, Permissions = "r" },
                });
                changed = true;
            }
        }

        if (changed)
        {
            await Container.SetAccessPolicyAsync(publicAccess, identifiers, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        _ready = true;
    }
}
