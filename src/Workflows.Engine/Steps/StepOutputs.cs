using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Steps;

/// <summary>
/// Moving step outputs between the store and a machine: publishing a folder a handler wrote, and downloading a
/// published output's files (verified against its manifest) into a cache folder keyed by content hash.
/// </summary>
public static class StepOutputs
{
    /// <summary>The activity version of every step's output key (prepare-data and the job steps; GitOps reads it too).</summary>
    public const string Version = "1";

    public static ArtifactKey KeyOf(StepOutput output) => ArtifactKey.FromParts(output.Activity, Version, output.KeyHash);

    /// <summary>
    /// The files of <paramref name="output"/> under <paramref name="folder"/>/, downloaded (verified by SHA-256) into
    /// this machine's cache once per content hash; returns the local folder holding them (paths below <paramref name="folder"/>).
    /// </summary>
    public static async Task<string> DownloadAsync(EngineServices services, StepOutput output, string folder, CancellationToken cancellationToken = default)
    {
        var manifest = await services.Manifests.TryGetAsync(KeyOf(output), cancellationToken).ConfigureAwait(false)
                       ?? throw new InvalidDataException($"the output of step '{output.Step}' ({output.Prefix}) is not in the store");
        var local = services.CacheFolder(output.Activity, manifest.ContentHash);
        await DownloadEntriesAsync(services, manifest, folder + "/", local, cancellationToken).ConfigureAwait(false);
        return local;
    }

    /// <summary>The same for an output known by its prefix (<c>cas/&lt;type&gt;/&lt;hash&gt;/</c>, as run records hold it), into <paramref name="localFolder"/>.</summary>
    public static async Task<IReadOnlyList<string>> DownloadAsync(EngineServices services, string outputPrefix, string folder, string localFolder,
        CancellationToken cancellationToken = default)
    {
        var parts = outputPrefix.TrimEnd('/').Split('/');
        if (parts.Length != 3 || parts[0] + "/" != ArtifactKey.RootPrefix)
        {
            throw new ArgumentException($"'{outputPrefix}' is not an output prefix (cas/<activity>/<hash>/)", nameof(outputPrefix));
        }

        var manifest = await services.Manifests.TryGetAsync(ArtifactKey.FromParts(parts[1], Version, parts[2]), cancellationToken).ConfigureAwait(false)
                       ?? throw new InvalidDataException($"no published output at {outputPrefix}");
        return await DownloadEntriesAsync(services, manifest, folder + "/", localFolder, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Downloads (verified) every entry under <paramref name="pathPrefix"/> into <paramref name="local"/>, keeping the
    /// path below the prefix. A file already there with the entry's length is kept: files only ever appear there after
    /// their SHA-256 verified (atomic rename), and the folder is keyed by content.
    /// </summary>
    private static async Task<IReadOnlyList<string>> DownloadEntriesAsync(EngineServices services, Manifest manifest, string pathPrefix, string local,
        CancellationToken cancellationToken)
    {
        var files = new List<string>();
        foreach (var entry in manifest.Entries.Where(e => e.Path.StartsWith(pathPrefix, StringComparison.Ordinal)))
        {
            var target = Path.Combine(local, entry.Path[pathPrefix.Length..]);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (!File.Exists(target) || new FileInfo(target).Length != entry.Length)
            {
                await services.Manifests.DownloadVerifiedToFileAsync(manifest, entry.Path, target, cancellationToken).ConfigureAwait(false);
            }

            files.Add(target);
        }

        return files;
    }

    /// <summary>Publishes every file under <paramref name="folder"/> (paths relative to it) as the output of <paramref name="key"/>; returns its content hash.</summary>
    public static async Task<string> PublishFolderAsync(EngineServices services, ArtifactKey key, string runId, string folder,
        IReadOnlyDictionary<string, string>? properties, CancellationToken cancellationToken)
    {
        var writer = services.Manifests.BeginWrite(key, services.Producer(runId));
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            await using var content = File.OpenRead(file);
            await writer.PutAsync(Path.GetRelativePath(folder, file).Replace('\\', '/'), content, cancellationToken).ConfigureAwait(false);
        }

        var published = await writer.PublishAsync(properties, cancellationToken).ConfigureAwait(false);
        return published.Manifest.ContentHash;
    }
}
