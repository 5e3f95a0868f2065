using System.Text.Json.Nodes;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.ContentAddressing;

/// <summary>
/// The content address of one activity output: everything that determines the output, hashed. Two executions with
/// the same key produce the same artifact, so the second one can be skipped (cache hit), whichever experiment or run
/// asks for it.
/// </summary>
/// <remarks>
/// <c>Hash = SHA-256( UTF-8( canonical JSON of
/// {"scheme":"wf-cas-v1","activity":A,"activityVersion":V,"inputs":I,"inputArtifacts":{role:hash,...}} ) )</c>
/// where I is the activity's inputs as canonical JSON (<see cref="CanonicalJson"/>) and each input artifact is named
/// by its role and the content hash of its manifest (<see cref="Manifest.ContentHash"/>). Bump the activity version
/// whenever the code changes what it writes.
/// </remarks>
public sealed record ArtifactKey
{
    public const string Scheme = "wf-cas-v1";
    public const string RootPrefix = "cas/";

    private ArtifactKey(string activity, string activityVersion, string hash)
    {
        Activity = activity;
        ActivityVersion = activityVersion;
        Hash = hash;
    }

    public string Activity { get; }
    public string ActivityVersion { get; }

    /// <summary>Lower-case hex SHA-256 (64 characters).</summary>
    public string Hash { get; }

    /// <summary><c>cas/&lt;activity&gt;/&lt;hash&gt;/</c>: everything of this output lives below.</summary>
    public string Prefix => $"{RootPrefix}{Activity}/{Hash}/";

    /// <summary>The manifest; it exists only once the output is complete.</summary>
    public string ManifestName => Prefix + Manifest.FileName;

    public override string ToString() => $"{Activity}@{ActivityVersion}/{Hash[..12]}";

    public static ArtifactKey Compute(
        string activity,
        string activityVersion,
        JsonNode? inputs,
        IReadOnlyDictionary<string, string>? inputArtifactHashes = null) =>
        ComputeFromCanonicalInputs(activity, activityVersion, CanonicalJson.Canonicalize(inputs), inputArtifactHashes);

    public static ArtifactKey Compute(
        string activity,
        string activityVersion,
        string inputsJson,
        IReadOnlyDictionary<string, string>? inputArtifactHashes = null) =>
        ComputeFromCanonicalInputs(activity, activityVersion, CanonicalJson.Canonicalize(inputsJson), inputArtifactHashes);

    /// <summary>Re-creates a key read back from storage (a manifest, a run record): validates every part.</summary>
    public static ArtifactKey FromParts(string activity, string activityVersion, string hash)
    {
        ArtifactName.ValidateSegment(activity, nameof(activity));
        ArgumentException.ThrowIfNullOrWhiteSpace(activityVersion);
        if (!Sha256Hex.IsValid(hash))
        {
            throw new ArgumentException($"'{hash}' is not a lower-case hex SHA-256.", nameof(hash));
        }
        return new ArtifactKey(activity, activityVersion, hash);
    }

    private static ArtifactKey ComputeFromCanonicalInputs(
        string activity, string activityVersion, string canonicalInputs, IReadOnlyDictionary<string, string>? inputArtifactHashes)
    {
        ArtifactName.ValidateSegment(activity, nameof(activity));
        ArgumentException.ThrowIfNullOrWhiteSpace(activityVersion);
        var artifacts = new JsonObject();
        foreach (var (role, hash) in (inputArtifactHashes ?? new Dictionary<string, string>()).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!Sha256Hex.IsValid(hash))
            {
                throw new ArgumentException($"Input artifact '{role}' has hash '{hash}', not a lower-case hex SHA-256.", nameof(inputArtifactHashes));
            }
            artifacts[role] = hash;
        }
        var envelope = new JsonObject
        {
            ["scheme"] = Scheme,
            ["activity"] = activity,
            ["activityVersion"] = activityVersion,
            ["inputs"] = JsonNode.Parse(canonicalInputs),
            ["inputArtifacts"] = artifacts,
        };
        var text = CanonicalJson.Canonicalize(envelope);
        return new ArtifactKey(activity, activityVersion, Sha256Hex.Of(text));
    }
}
