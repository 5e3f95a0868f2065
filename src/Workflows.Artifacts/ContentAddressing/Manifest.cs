using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.ContentAddressing;

/// <summary>One blob of an artifact: its logical path inside the artifact, the blob that holds it, length and SHA-256.</summary>
public sealed record ManifestEntry(string Path, string Blob, long Length, string Sha256);

/// <summary>
/// The list of every blob of one activity output with its SHA-256 and length, stored as
/// <c>cas/&lt;activity&gt;/&lt;hash&gt;/manifest.json</c>. Written last, created only if absent: a manifest that exists
/// describes a complete output, and only one writer ever publishes it.
/// </summary>
public sealed record Manifest
{
    public const string FileName = "manifest.json";
    public const int CurrentSchemaVersion = 1;

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    public required string Activity { get; init; }
    public required string ActivityVersion { get; init; }
    public required string KeyHash { get; init; }

    /// <summary>The writer attempt whose blobs the entries point to (losers' blobs live under other attempt ids).</summary>
    public required string AttemptId { get; init; }

    /// <summary>Who wrote it (engine instance, run id, host): for humans debugging, not part of any hash.</summary>
    public required string Producer { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
    public required IReadOnlyList<ManifestEntry> Entries { get; init; }

    /// <summary>Small facts about the output (row counts, token counts) for reports; not part of <see cref="ContentHash"/>.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }

    [JsonIgnore]
    public ArtifactKey Key => ArtifactKey.FromParts(Activity, ActivityVersion, KeyHash);

    /// <summary>
    /// Identifies the output's bytes: SHA-256 of the canonical JSON of the entries' (path, length, sha256), sorted by
    /// path. Independent of writer, attempt, time and properties, so equal outputs have equal content hashes; this is
    /// the "input artifact hash" a downstream <see cref="ArtifactKey"/> is derived from.
    /// </summary>
    [JsonIgnore]
    public string ContentHash
    {
        get
        {
            var array = new JsonArray();
            foreach (var e in Entries.OrderBy(e => e.Path, StringComparer.Ordinal))
            {
                array.Add(new JsonObject { ["path"] = e.Path, ["length"] = e.Length, ["sha256"] = e.Sha256 });
            }
            return Sha256Hex.Of(CanonicalJson.Canonicalize(array));
        }
    }

    public ManifestEntry this[string path] =>
        Find(path) ?? throw new KeyNotFoundException($"Artifact {Key} has no entry '{path}'.");

    public ManifestEntry? Find(string path) => Entries.FirstOrDefault(e => string.Equals(e.Path, path, StringComparison.Ordinal));

    /// <summary>Checks that the manifest is self-consistent and cannot point outside its own prefix.</summary>
    public void Validate()
    {
        var key = Key;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        ArtifactName.ValidateSegment(AttemptId, nameof(AttemptId));
        foreach (var e in Entries)
        {
            ArtifactName.Validate(e.Path, nameof(ManifestEntry.Path));
            ArtifactName.Validate(e.Blob, nameof(ManifestEntry.Blob));
            if (!e.Blob.StartsWith(key.Prefix, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"Manifest of {key} lists blob '{e.Blob}' outside its prefix '{key.Prefix}'.");
            }
            if (!Sha256Hex.IsValid(e.Sha256) || e.Length < 0)
            {
                throw new InvalidDataException($"Manifest of {key} has an invalid hash or length for '{e.Path}'.");
            }
            if (!seen.Add(e.Path))
            {
                throw new InvalidDataException($"Manifest of {key} lists '{e.Path}' twice.");
            }
        }
    }
}
