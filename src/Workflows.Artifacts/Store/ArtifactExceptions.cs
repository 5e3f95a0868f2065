namespace Workflows.Artifacts.Store;

/// <summary>A blob's content does not match the SHA-256 (or length) recorded for it: bit rot, tampering, or an overwrite.</summary>
public sealed class ArtifactCorruptedException : Exception
{
    public ArtifactCorruptedException(string blobName, string expectedSha256, string actualSha256, long? expectedLength, long actualLength)
        : base(BuildMessage(blobName, expectedSha256, actualSha256, expectedLength, actualLength))
    {
        BlobName = blobName;
        ExpectedSha256 = expectedSha256;
        ActualSha256 = actualSha256;
        ExpectedLength = expectedLength;
        ActualLength = actualLength;
    }

    public string BlobName { get; }
    public string ExpectedSha256 { get; }
    public string ActualSha256 { get; }
    public long? ExpectedLength { get; }
    public long ActualLength { get; }

    private static string BuildMessage(string blob, string expected, string actual, long? expectedLength, long actualLength)
    {
        var lengths = expectedLength is { } e && e != actualLength ? $" (expected {e} bytes, read {actualLength})" : "";
        return $"Artifact blob '{blob}' is corrupted: expected SHA-256 {expected}, actual {actual}{lengths}.";
    }
}

/// <summary>The named blob does not exist.</summary>
public sealed class ArtifactNotFoundException(string blobName)
    : Exception($"Artifact blob '{blobName}' does not exist.")
{
    public string BlobName { get; } = blobName;
}

/// <summary>
/// The storage service could not be used at all: unreachable (refused, reset, timed out), or its container is gone
/// (a wiped or reset store). The message names the endpoint and container, never a key.
/// </summary>
public sealed class StorageUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
