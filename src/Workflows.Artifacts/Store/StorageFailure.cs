using System.Net.Sockets;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Workflows.Artifacts.Store;

/// <summary>
/// Tells "the storage service cannot be used" (no answer, a connection reset mid-response, the container gone) from
/// ordinary answers (not found, condition failed), and says which in words that name the endpoint, never a key.
/// </summary>
public static class StorageFailure
{
    public const string ContainerGone = "the container no longer exists: the store was wiped or reset";

    /// <summary>Why <paramref name="e"/> means storage is unusable, or null when it is an ordinary failure.</summary>
    public static string? Describe(Exception e) => e switch
    {
        StorageUnavailableException => null, // already described
        RequestFailedException { Status: 0 } r => $"it does not answer ({Innermost(r)})",
        RequestFailedException { Status: 404 } r when r.ErrorCode == BlobErrorCode.ContainerNotFound => ContainerGone,
        HttpIOException io => $"the connection broke mid-response ({io.Message.TrimEnd('.')})",
        HttpRequestException or SocketException => $"it does not answer ({Innermost(e)})",
        // The SDK's own retries end in "Retry failed after N tries": one transport failure per try.
        AggregateException a when a.InnerExceptions.Count > 0 && a.InnerExceptions.All(i => Describe(i) is not null) =>
            $"{Describe(a.InnerExceptions[^1])}, after {a.InnerExceptions.Count} tries",
        _ when e.InnerException is { } inner && e is not RequestFailedException => Describe(inner),
        _ => null,
    };

    public static StorageUnavailableException Unavailable(string why, BlobContainerClient container, string doing, Exception? inner) =>
        new($"Storage at {container.Uri.GetLeftPart(UriPartial.Authority)} (container '{container.Name}') cannot be used while {doing}: {why}.", inner);

    /// <summary>The same for a failure outside the blob store (DTFx queues and tables), named by <paramref name="where"/>.</summary>
    public static Exception Explain(Exception e, string where, string doing) =>
        Describe(e) is { } why ? new StorageUnavailableException($"Storage at {where} cannot be used while {doing}: {why}.", e) : e;

    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e.Message.TrimEnd('.');
    }
}
