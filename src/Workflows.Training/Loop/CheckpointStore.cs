using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Workflows.Artifacts.Store;

namespace Workflows.Training.Loop;

/// <summary>
/// Where complete checkpoints outlive the machine that wrote them. A checkpoint is a folder (see
/// <see cref="TrainingCheckpoints"/>); a store holds whole folders and lists the complete ones.
/// </summary>
public interface ICheckpointStore
{
    /// <summary>Steps of the complete checkpoints in the store, ascending.</summary>
    Task<IReadOnlyList<int>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>Uploads a complete local checkpoint folder; when it returns, the checkpoint is listed.</summary>
    Task UploadAsync(int step, string folder, CancellationToken cancellationToken = default);

    /// <summary>Downloads a checkpoint into <paramref name="folder"/> (which must not exist), every file verified.</summary>
    Task DownloadAsync(int step, string folder, CancellationToken cancellationToken = default);

    /// <summary>Removes a checkpoint: it stops being listed first, then its files (those no other checkpoint shares) go.</summary>
    Task DeleteAsync(int step, CancellationToken cancellationToken = default);
}

/// <summary>
/// Checkpoints in the artifact store (Azure Blob / Azurite), content-addressed: every file is a blob named by its
/// SHA-256 under <c>{prefix}/blobs/</c> (unchanged files, e.g. config.json, are stored once), and a manifest
/// <c>{prefix}/manifests/checkpoint-{step}.json</c> listing name → hash and length is written last, so a listed checkpoint is
/// always complete. Downloads verify every byte against the manifest.
/// </summary>
public sealed partial class ArtifactCheckpointStore(IArtifactStore store, string prefix) : ICheckpointStore
{
    static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    sealed record FileEntry(string Name, string Sha256, long Length);
    sealed record CheckpointManifest(int Step, IReadOnlyList<FileEntry> Files);

    public string Prefix { get; } = prefix.TrimEnd('/');

    string ManifestName(int step) => string.Create(CultureInfo.InvariantCulture, $"{Prefix}/manifests/checkpoint-{step:D9}.json");
    string BlobName(string sha256) => $"{Prefix}/blobs/{sha256}";

    public async Task<IReadOnlyList<int>> ListAsync(CancellationToken cancellationToken = default)
    {
        var steps = new List<int>();
        await foreach (var item in store.ListAsync($"{Prefix}/manifests/", cancellationToken).ConfigureAwait(false))
        {
            var match = ManifestPattern().Match(item.Name[(Prefix.Length + "/manifests/".Length)..]);
            if (match.Success) steps.Add(int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
        }
        steps.Sort();
        return steps;
    }

    public async Task UploadAsync(int step, string folder, CancellationToken cancellationToken = default)
    {
        if (!TrainingCheckpoints.IsComplete(folder)) throw new InvalidOperationException($"{folder} is not a complete checkpoint");
        var files = new List<FileEntry>();
        foreach (var path in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            string sha;
            long length;
            await using (var read = File.OpenRead(path))
            {
                sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(read, cancellationToken).ConfigureAwait(false));
                length = read.Length;
            }
            if (!await store.ExistsAsync(BlobName(sha), cancellationToken).ConfigureAwait(false))
            {
                await using var content = File.OpenRead(path);
                var stored = await store.PutAsync(BlobName(sha), content, cancellationToken).ConfigureAwait(false);
                if (stored.Sha256 != sha) throw new InvalidDataException($"{path} changed while it was uploaded (SHA-256 {sha} before, {stored.Sha256} stored)");
            }
            files.Add(new FileEntry(Path.GetFileName(path), sha, length));
        }
        using var manifest = new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(new CheckpointManifest(step, files), Json));
        await store.PutAsync(ManifestName(step), manifest, cancellationToken).ConfigureAwait(false);
    }

    async Task<CheckpointManifest> ReadManifestAsync(int step, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await store.DownloadToAsync(ManifestName(step), buffer, cancellationToken: cancellationToken).ConfigureAwait(false);
        return JsonSerializer.Deserialize<CheckpointManifest>(buffer.ToArray(), Json)
            ?? throw new InvalidDataException($"{ManifestName(step)} is empty");
    }

    public async Task DownloadAsync(int step, string folder, CancellationToken cancellationToken = default)
    {
        if (Directory.Exists(folder)) throw new IOException($"{folder} exists already");
        var manifest = await ReadManifestAsync(step, cancellationToken).ConfigureAwait(false);
        if (manifest.Step != step) throw new InvalidDataException($"{ManifestName(step)} describes step {manifest.Step}");
        string temp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(folder))!, $".{Path.GetFileName(folder)}.download-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            foreach (var file in manifest.Files)
            {
                if (file.Name != Path.GetFileName(file.Name) || file.Name.StartsWith('.'))
                    throw new InvalidDataException($"{ManifestName(step)} names a file outside its folder: \"{file.Name}\"");
                await using var output = File.Create(Path.Combine(temp, file.Name));
                var got = await store.DownloadToAsync(BlobName(file.Sha256), output, file.Sha256, cancellationToken).ConfigureAwait(false);
                if (got.Length != file.Length) throw new InvalidDataException($"{file.Name}: {got.Length} bytes, the manifest says {file.Length}");
            }
            if (!TrainingCheckpoints.IsComplete(temp)) throw new InvalidDataException($"{ManifestName(step)} lists no {TrainingCheckpoints.CompleteMarker} marker");
            Directory.Move(temp, folder);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    public async Task DeleteAsync(int step, CancellationToken cancellationToken = default)
    {
        var doomed = await ReadManifestAsync(step, cancellationToken).ConfigureAwait(false);
        await store.DeleteAsync(ManifestName(step), cancellationToken).ConfigureAwait(false);
        var kept = new HashSet<string>(StringComparer.Ordinal);
        foreach (int other in await ListAsync(cancellationToken).ConfigureAwait(false))
            foreach (var file in (await ReadManifestAsync(other, cancellationToken).ConfigureAwait(false)).Files) kept.Add(file.Sha256);
        foreach (var file in doomed.Files.Where(f => !kept.Contains(f.Sha256)))
            await store.DeleteAsync(BlobName(file.Sha256), cancellationToken).ConfigureAwait(false);
    }

    [GeneratedRegex(@"^checkpoint-(\d+)\.json$")]
    private static partial Regex ManifestPattern();
}

/// <summary>
/// Uploads checkpoints in the background while training goes on, one at a time in step order, then applies the
/// retention: the newest <c>keep</c> checkpoints stay, locally and in the store (a local folder is deleted only
/// after it is uploaded, so a crash never leaves the only copy half-pruned). <see cref="DrainAsync"/> waits for
/// every queued upload and rethrows the first failure.
/// </summary>
public sealed class CheckpointUploader : IAsyncDisposable
{
    readonly ICheckpointStore store;
    readonly string localDirectory;
    readonly int keep;
    readonly BlockingCollection<(int Step, string Folder)> queue = new();
    readonly Task worker;
    readonly CancellationTokenSource stop = new();
    Exception? failure;

    public CheckpointUploader(ICheckpointStore store, string localDirectory, int keep, Action<string>? log = null)
    {
        (this.store, this.localDirectory, this.keep) = (store, localDirectory, keep);
        worker = Task.Run(async () =>
        {
            foreach (var (step, folder) in queue.GetConsumingEnumerable())
            {
                if (failure is not null) continue;
                try
                {
                    var clock = System.Diagnostics.Stopwatch.StartNew();
                    await store.UploadAsync(step, folder, stop.Token).ConfigureAwait(false);
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"checkpoint {step} uploaded in {clock.Elapsed.TotalSeconds:0.0} s"));
                    if (keep > 0) await PruneAsync(stop.Token).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    failure = e;
                    log?.Invoke($"checkpoint {step} upload failed: {e.Message}");
                }
            }
        });
    }

    /// <summary>Queues a complete checkpoint folder for upload (returns at once).</summary>
    public void Enqueue(int step, string folder) => queue.Add((step, folder));

    async Task PruneAsync(CancellationToken cancellationToken)
    {
        var remote = await store.ListAsync(cancellationToken).ConfigureAwait(false);
        foreach (int step in remote.OrderDescending().Skip(keep)) await store.DeleteAsync(step, cancellationToken).ConfigureAwait(false);
        // Uploads go in step order, so every local checkpoint up to the newest uploaded one is in the store or superseded there.
        int newestUploaded = remote.Count > 0 ? remote.Max() : -1;
        foreach (var (step, dir) in TrainingCheckpoints.Complete(localDirectory).Skip(keep))
            if (step <= newestUploaded) Directory.Delete(dir, recursive: true);
    }

    /// <summary>Waits until every queued checkpoint is uploaded; throws the first upload failure.</summary>
    public async Task DrainAsync()
    {
        queue.CompleteAdding();
        await worker.ConfigureAwait(false);
        if (failure is not null) throw new IOException($"a checkpoint could not be uploaded: {failure.Message}", failure);
    }

    public async ValueTask DisposeAsync()
    {
        if (!queue.IsAddingCompleted) queue.CompleteAdding();
        stop.Cancel();
        try { await worker.ConfigureAwait(false); } catch (OperationCanceledException) { }
        stop.Dispose();
        queue.Dispose();
    }
}
