using Workflows.Artifacts.Corpora;

namespace Workflows.Engine.Corpora;

/// <summary>
/// prepare-data's inputs when the experiment names a registered corpus (<c>data.corpus</c>) instead of local paths: keys
/// and SHA-256 come from the corpus manifest (no local hashing); bytes come from the store into this machine's cache.
/// </summary>
public static class CorpusInputs
{
    /// <summary>Cache kind under <see cref="EngineServices.CacheFolder"/>: one folder per file SHA-256.</summary>
    public const string CacheKind = "corpora";

    /// <summary>The registered files of <paramref name="corpus"/>, sorted by key; <see cref="CorpusNotFoundException"/> when it is not registered.</summary>
    public static async Task<IReadOnlyList<CorpusFile>> ResolveAsync(EngineServices services, string corpus, CancellationToken cancellationToken = default)
    {
        var manifest = await new CorpusRegistry(services.Store).GetAsync(corpus, cancellationToken);
        return [.. manifest.Files.OrderBy(f => f.Key, StringComparer.Ordinal)];
    }

    /// <summary>A verified local copy of one corpus file, downloaded once per machine and reused by later activities and runs.</summary>
    public static Task<string> LocalPathAsync(EngineServices services, CorpusFile file, CancellationToken cancellationToken = default) =>
        new CorpusRegistry(services.Store).LocalCopyAsync(file, services.CacheFolder(CacheKind, file.Sha256), cancellationToken);
}
