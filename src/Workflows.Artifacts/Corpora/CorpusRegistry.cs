using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Corpora;

/// <summary>One file of a registered corpus: the key data prep names it by (as <c>InputFile</c> derives it), its SHA-256 and length.</summary>
public sealed record CorpusFile(string Key, string Sha256, long Bytes)
{
    /// <summary>The content-addressed blob holding this file's bytes.</summary>
    public string Blob => CorpusRegistry.BlobName(Sha256);
}

/// <summary><c>corpora/&lt;name&gt;/manifest.json</c>: what a corpus name means, file by file (sorted by key).</summary>
public sealed record CorpusManifest(string Format, string Name, IReadOnlyList<CorpusFile> Files, DateTimeOffset RegisteredAt)
{
    public const string FormatName = "wf-corpus/1";

    public long Bytes => Files.Sum(f => f.Bytes);
}

/// <summary>How one file of an upload went: uploaded, or already in the store (same SHA-256).</summary>
public sealed record CorpusUploadedFile(CorpusFile File, bool Skipped);

/// <summary>The result of <see cref="CorpusRegistry.UploadAsync"/>: the manifest now registered and what each file did.</summary>
public sealed record CorpusUpload(CorpusManifest Manifest, IReadOnlyList<CorpusUploadedFile> Files, bool ManifestUnchanged);

/// <summary>A corpus name that is not registered.</summary>
public sealed class CorpusNotFoundException(string name)
    : Exception($"corpus '{name}' is not registered in this store (no {CorpusRegistry.ManifestName(name)}): register it with 'wf corpus upload {name} DIR_OR_FILES...', or list data.paths")
{
    public string Name { get; } = name;
}

/// <summary>
/// Registered corpora in the artifact store: file bytes content-addressed under <c>corpora/blobs/&lt;sha256&gt;</c> (shared
/// by every corpus that holds the same file, uploaded once), and per corpus a manifest <c>corpora/&lt;name&gt;/manifest.json</c>
/// written last, so a manifest only exists once every blob it names does. A remote engine reads inputs from here instead
/// of from local paths.
/// </summary>
public sealed partial class CorpusRegistry(IArtifactStore store)
{
    public const string Prefix = "corpora/";
    public const string BlobsFolder = "blobs";
    public const string ManifestFileName = "manifest.json";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public IArtifactStore Store { get; } = store;

    /// <summary>Why <paramref name="name"/> is not a valid corpus name (the spec's corpus id pattern, at most 63 characters, not 'blobs'), or null.</summary>
    public static string? ExplainName(string? name) =>
        name is null || !NamePattern().IsMatch(name) ? $"corpus name '{name}' must match ^[a-z0-9][a-z0-9-]*$ (lower-case letters, digits, '-')"
        : name.Length > 63 ? $"corpus name '{name}' is longer than 63 characters"
        : name == BlobsFolder ? $"corpus name '{BlobsFolder}' is reserved (it holds the file blobs)"
        : null;

    public static string ValidateName([NotNull] string? name)
    {
        var problem = ExplainName(name);
        if (name is null || problem is not null)
        {
            throw new ArgumentException(problem, nameof(name));
        }

        return name;
    }

    public static string ManifestName(string name) => $"{Prefix}{name}/{ManifestFileName}";

    /// <summary>The corpus's measured length statistics (written by <c>wf corpus upload</c> beside its manifest).</summary>
    public static string StatisticsName(string name) => $"{Prefix}{name}/stats.json";

    /// <summary>One file's measured statistics, under the key that names its bytes, tokenizer and reader settings.</summary>
    public static string FileStatisticsName(string key) =>
        key.Length > 64 && key[..64].All(char.IsAsciiHexDigitLower) && key.All(c => char.IsAsciiLetterOrDigit(c) || c == '.')
            ? $"{Prefix}{BlobsFolder}/{key}.stats.json"
            : throw new ArgumentException($"'{key}' is not a statistics key (sha256.variant)", nameof(key));

    /// <summary>A small text blob (statistics), or null when it does not exist.</summary>
    public async Task<string?> TryReadTextAsync(string blobName, CancellationToken cancellationToken = default)
    {
        if (!await Store.ExistsAsync(blobName, cancellationToken))
        {
            return null;
        }

        await using var stream = await Store.OpenReadAsync(blobName, cancellationToken);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync(cancellationToken);
    }

    public async Task WriteTextAsync(string blobName, string text, CancellationToken cancellationToken = default)
    {
        using var body = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
        await Store.PutAsync(blobName, body, cancellationToken);
    }

    public static string BlobName(string sha256) =>
        sha256.Length == 64 && sha256.All(char.IsAsciiHexDigitLower)
            ? $"{Prefix}{BlobsFolder}/{sha256}"
            : throw new ArgumentException($"'{sha256}' is not a lower-case hex SHA-256", nameof(sha256));

    /// <summary>
    /// Uploads each (key, local path) — skipping a blob that already holds that SHA-256 — then writes the manifest. A
    /// different manifest under the name is replaced only when <paramref name="replace"/> is set (runs resolved the old
    /// one by content, so their caches stay valid either way).
    /// </summary>
    public async Task<CorpusUpload> UploadAsync(string name, IReadOnlyList<(string Key, string Path)> files, bool replace = false,
        IProgress<CorpusUploadedFile>? progress = null, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        if (files.Count == 0)
        {
            throw new ArgumentException("a corpus needs at least one file", nameof(files));
        }

        if (files.Select(f => f.Key).Distinct(StringComparer.Ordinal).Count() != files.Count)
        {
            throw new ArgumentException("two files have the same key", nameof(files));
        }

        var done = new List<CorpusUploadedFile>();
        foreach (var (key, path) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var uploaded = await UploadFileAsync(key, path, cancellationToken);
            done.Add(uploaded);
            progress?.Report(uploaded);
        }

        var manifest = new CorpusManifest(CorpusManifest.FormatName, name, [.. done.Select(d => d.File)], DateTimeOffset.UtcNow);
        var manifestName = ManifestName(name);
        var existing = await Store.GetPropertiesAsync(manifestName, cancellationToken);
        if (existing is not null)
        {
            var current = await TryGetAsync(name, cancellationToken);
            if (current is not null && current.Files.SequenceEqual(manifest.Files))
            {
                return new CorpusUpload(current, done, ManifestUnchanged: true);
            }

            if (!replace)
            {
                throw new InvalidOperationException(
                    $"corpus '{name}' is registered with other files ({current?.Files.Count} file(s), {current?.Bytes:N0} bytes): pass --replace to point the name at these");
            }
        }

        // Every blob exists (checked above, file by file); the manifest is one blob write, so it appears whole or not at all.
        var condition = existing is null ? WriteCondition.IfNotExists : WriteCondition.IfMatch(existing.ETag);
        using var body = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(manifest, Json));
        if (await Store.TryPutAsync(manifestName, body, condition, cancellationToken) is null)
        {
            throw new InvalidOperationException($"corpus '{name}' was registered by someone else meanwhile: run the upload again");
        }

        return new CorpusUpload(manifest, done, ManifestUnchanged: false);
    }

    private async Task<CorpusUploadedFile> UploadFileAsync(string key, string path, CancellationToken cancellationToken)
    {
        var length = new FileInfo(path).Length;
        string sha;
        await using (var read = File.OpenRead(path))
        {
            sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(read, cancellationToken));
        }

        var file = new CorpusFile(key, sha, length);
        if (await BlobHoldsAsync(file, cancellationToken))
        {
            return new CorpusUploadedFile(file, Skipped: true);
        }

        StoredArtifact? stored;
        await using (var content = File.OpenRead(path))
        {
            stored = await Store.TryPutAsync(file.Blob, content, WriteCondition.IfNotExists, cancellationToken);
        }

        if (stored is null)
        {
            // Someone else wrote that blob between our check and our write: it must hold the same bytes.
            return await BlobHoldsAsync(file, cancellationToken)
                ? new CorpusUploadedFile(file, Skipped: true)
                : throw new InvalidDataException($"{file.Blob} exists but does not hold {path} (SHA-256 differs): delete the blob and upload again");
        }

        if (stored.Sha256 != sha || stored.Length != length)
        {
            // The file changed between hashing and uploading: never leave a blob whose name lies about its content.
            await Store.DeleteAsync(file.Blob, cancellationToken);
            throw new InvalidDataException($"{path} changed while it was uploaded (SHA-256 {sha} before, {stored.Sha256} uploaded): upload again");
        }

        return new CorpusUploadedFile(file, Skipped: false);
    }

    private async Task<bool> BlobHoldsAsync(CorpusFile file, CancellationToken cancellationToken) =>
        await Store.GetPropertiesAsync(file.Blob, cancellationToken) is { } p && p.Sha256 == file.Sha256 && p.Length == file.Bytes;

    /// <summary>The registered manifest, or null when <paramref name="name"/> is not registered.</summary>
    public async Task<CorpusManifest?> TryGetAsync(string name, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        // Verified against the SHA-256 the store recorded when the manifest was written (a damaged manifest is refused).
        if (await Store.TryReadVerifiedAsync(ManifestName(name), cancellationToken) is not { } blob)
        {
            return null;
        }

        var manifest = JsonSerializer.Deserialize<CorpusManifest>(blob.Content, Json)
                       ?? throw new InvalidDataException($"{ManifestName(name)} is empty");
        return manifest.Format == CorpusManifest.FormatName && manifest.Name == name
            ? manifest
            : throw new InvalidDataException($"{ManifestName(name)} is not a {CorpusManifest.FormatName} manifest of '{name}' (format '{manifest.Format}', name '{manifest.Name}')");
    }

    /// <summary>The registered manifest; throws <see cref="CorpusNotFoundException"/> naming the command that registers it.</summary>
    public async Task<CorpusManifest> GetAsync(string name, CancellationToken cancellationToken = default) =>
        await TryGetAsync(name, cancellationToken) ?? throw new CorpusNotFoundException(name);

    /// <summary>Names of every registered corpus, sorted.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken = default)
    {
        var names = new List<string>();
        await foreach (var blob in Store.ListAsync(Prefix, cancellationToken))
        {
            var rest = blob.Name[Prefix.Length..];
            var slash = rest.IndexOf('/');
            if (slash > 0 && rest[(slash + 1)..] == ManifestFileName && ExplainName(rest[..slash]) is null)
            {
                names.Add(rest[..slash]);
            }
        }

        return [.. names.Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// A local copy of <paramref name="file"/> under <paramref name="cacheFolder"/> (one folder per SHA-256, the file
    /// named like its key so its format is detected): downloaded once, verified against the SHA-256, then reused. The
    /// file appears only after it verified, so a crash or a corrupted blob never leaves a file that looks complete.
    /// </summary>
    public async Task<string> LocalCopyAsync(CorpusFile file, string cacheFolder, CancellationToken cancellationToken = default)
    {
        var target = Path.Combine(cacheFolder, Path.GetFileName(file.Key));
        if (File.Exists(target) && new FileInfo(target).Length == file.Bytes)
        {
            return target;
        }

        Directory.CreateDirectory(cacheFolder);
        var partial = $"{target}.{Guid.NewGuid():N}.partial";
        try
        {
            await using (var output = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
            {
                await Store.DownloadToAsync(file.Blob, output, file.Sha256, cancellationToken);
            }

            try
            {
                File.Move(partial, target, overwrite: false);
            }
            catch (IOException) when (File.Exists(target))
            {
                // Another activity on this machine finished the same download first; its copy verified too.
            }

            return target;
        }
        finally
        {
            File.Delete(partial);
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]*$")]
    private static partial Regex NamePattern();
}
