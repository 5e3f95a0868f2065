using System.Text.Json;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Packing;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;
using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Pipeline;

/// <summary>What one call of <see cref="DataPrepPipeline.RunAsync"/> did.</summary>
/// <param name="Manifest">The manifest when this call published it (it found every shard's receipt); else null.</param>
public sealed record DataPrepResult(PackingPlan Plan, IReadOnlyList<ShardReceipt> WrittenShards, DataPrepManifest? Manifest);

/// <summary>
/// Data preparation in two passes, usable whole (<see cref="RunAsync"/>) or step by step by engine activities:
/// <list type="number">
/// <item><see cref="MeasureAsync"/> per input file: lengths, sources and token ids (the length index + token cache).</item>
/// <item><see cref="Plan"/>: a pure function of all length indexes and the options.</item>
/// <item><see cref="WriteShardAsync"/> per output shard: Parquet from the token caches, plus a receipt.</item>
/// <item><see cref="TryPublish"/>: statistics, charts and, last, the manifest, once every receipt exists.</item>
/// </list>
/// </summary>
public static class DataPrepPipeline
{
    public const string IndexFolderName = "index";
    public const string StatisticsFileName = "stats.json";
    public const string LengthChartFileName = "length-histogram.png";
    public const string SourceChartFileName = "source-mix.png";

    /// <summary>
    /// Runs shard task <paramref name="shardIndex"/> of <paramref name="shardCount"/>: measures the inputs i with
    /// i mod N = K, waits until every input's length index exists in <paramref name="indexFolder"/> (the tasks share
    /// the folder), plans, writes output shards j with j mod N = K, and publishes if its receipts were the last ones.
    /// With N = 1 it does everything. Any N gives the same files, byte for byte.
    /// </summary>
    public static async Task<DataPrepResult> RunAsync(
        DataPrepOptions options,
        IReadOnlyList<InputFile> inputs,
        string outFolder,
        int shardCount,
        int shardIndex,
        ITokenizer tokenizer,
        IProgress<DataPrepProgress>? progress,
        CancellationToken cancellationToken,
        string? indexFolder = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shardCount, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(shardIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(shardIndex, shardCount);
        options.Validate();
        if (inputs.Count == 0)
        {
            throw new ArgumentException("No input files.", nameof(inputs));
        }

        indexFolder ??= Path.Combine(outFolder, IndexFolderName);
        Directory.CreateDirectory(outFolder);
        var sorted = inputs.OrderBy(i => i.Key, StringComparer.Ordinal).ToList();

        // Pass 1: this task's share of the inputs.
        var mine = sorted.Where((_, i) => i % shardCount == shardIndex).ToList();
        long docs = 0, tokens = 0;
        var filesDone = 0;
        var measured = new Dictionary<string, LengthIndex>(StringComparer.Ordinal);

        // One reader thread per file (decompress + JSON) reads about 5x faster than one tokenizer thread, so one file
        // at a time keeps up to ~4 tokenizer threads busy; more readers (one per 4 threads) only for more threads,
        // since every file read at once adds its window of batches to memory. Each file's output is its own and in
        // its own order, so how many run at once changes nothing in the files.
        var perFile = new (long Docs, long Tokens)[mine.Count];
        var gate = new Lock();
        using var workers = new MeasureWorkers(options.Threads);
        await Parallel.ForEachAsync(Enumerable.Range(0, mine.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, (options.Threads + 3) / 4), CancellationToken = cancellationToken },
            async (f, ct) =>
            {
                var index = await Task.Run(() => CorpusMeasurer.Measure(mine[f], options.Reader, tokenizer, indexFolder, workers, (d, t) =>
                {
                    lock (gate)
                    {
                        docs += d - perFile[f].Docs;
                        tokens += t - perFile[f].Tokens;
                        perFile[f] = (d, t);
                        progress?.Report(new DataPrepProgress(DataPrepPhase.Measure, docs, tokens, 0, filesDone, mine.Count, 0, 0));
                    }
                }, ct), ct);
                lock (gate)
                {
                    measured[mine[f].Key] = index;
                    filesDone++;
                    progress?.Report(new DataPrepProgress(DataPrepPhase.Measure, docs, tokens, 0, filesDone, mine.Count, 0, 0));
                }
            });

        // Barrier: the other tasks' indexes.
        var indexes = await WaitForIndexesAsync(sorted, measured, indexFolder, options, tokenizer, cancellationToken);
        progress?.Report(new DataPrepProgress(DataPrepPhase.Plan, docs, tokens, 0, filesDone, mine.Count, 0, 0));
        var plan = Plan(indexes, options, tokenizer);
        RemoveStaleManifest(outFolder, plan.PlanId);

        var shards = Enumerable.Range(0, plan.ShardCount).Where(j => j % shardCount == shardIndex).ToList();
        var written = new List<ShardReceipt>();
        var shardsDone = 0;
        progress?.Report(new DataPrepProgress(DataPrepPhase.Write, docs, tokens, 0, filesDone, mine.Count, 0, shards.Count));
        await Parallel.ForEachAsync(shards, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Threads), CancellationToken = cancellationToken },
            async (shard, ct) =>
            {
                var receipt = await WriteShardAsync(plan, shard, indexFolder, outFolder, ct);
                lock (written)
                {
                    written.Add(receipt);
                    shardsDone++;
                    progress?.Report(new DataPrepProgress(DataPrepPhase.Write, docs, tokens, 0, filesDone, mine.Count, shardsDone, shards.Count));
                }
            });

        progress?.Report(new DataPrepProgress(DataPrepPhase.Publish, docs, tokens, 0, filesDone, mine.Count, shardsDone, shards.Count));
        var manifest = TryPublish(plan, outFolder);
        progress?.Report(new DataPrepProgress(DataPrepPhase.Done, docs, tokens, 0, filesDone, mine.Count, shardsDone, shards.Count));
        return new DataPrepResult(plan, [.. written.OrderBy(r => r.Shard)], manifest);
    }

    /// <summary>Pass 1 for one input (an engine activity): writes, or reuses when unchanged, its length index and token cache.</summary>
    public static Task<LengthIndex> MeasureAsync(InputFile file, DataPrepOptions options, ITokenizer tokenizer, string indexFolder,
        Action<long, long>? onProgress, CancellationToken cancellationToken) =>
        CorpusMeasurer.MeasureAsync(file, options.Reader, tokenizer, indexFolder, options.Threads, onProgress, cancellationToken);

    public static PackingPlan Plan(IReadOnlyList<LengthIndex> indexes, DataPrepOptions options, ITokenizer tokenizer) =>
        SelectionPlanner.Plan(indexes, options, tokenizer);

    /// <summary>Writes one output shard (an engine activity). Rewrites nothing when its receipt for this plan already exists.</summary>
    public static async Task<ShardReceipt> WriteShardAsync(PackingPlan plan, int shard, string indexFolder, string outFolder, CancellationToken cancellationToken)
    {
        var existing = ReadReceipt(outFolder, shard);
        if (existing is not null && existing.PlanId == plan.PlanId)
        {
            var path = Path.Combine(outFolder, existing.File);
            if (File.Exists(path) && new FileInfo(path).Length == existing.Bytes)
            {
                return existing; // idempotent: at-least-once delivery may run a shard twice
            }
        }

        return await PackedShardWriter.WriteShardAsync(plan, shard, indexFolder, outFolder, cancellationToken);
    }

    /// <summary>
    /// Publishes when every shard of the plan has a receipt: statistics JSON, charts, then the manifest (atomically,
    /// last). Returns null, writing nothing, while any receipt is missing.
    /// </summary>
    public static DataPrepManifest? TryPublish(PackingPlan plan, string outFolder)
    {
        var receipts = new List<ShardReceipt>();
        for (var shard = 0; shard < plan.ShardCount; shard++)
        {
            var receipt = ReadReceipt(outFolder, shard);
            if (receipt is null || receipt.PlanId != plan.PlanId)
            {
                return null;
            }

            var path = Path.Combine(outFolder, receipt.File);
            if (!File.Exists(path) || new FileInfo(path).Length != receipt.Bytes)
            {
                throw new InvalidDataException($"{path}: missing or not the {receipt.Bytes} bytes its receipt records.");
            }

            receipts.Add(receipt);
        }

        return Publish(plan, receipts, outFolder);
    }

    /// <summary>
    /// Writes what completes a prepared-data folder beside its shards: <c>stats.json</c>, the two charts and, last,
    /// <c>manifest.json</c> with every shard's SHA-256. <c>wf prep</c> writes them next to the shards it wrote; the
    /// engine's publish activity writes them into a scratch folder and uploads them beside the shards it uploaded.
    /// </summary>
    /// <param name="receipts">One per shard of the plan, any order.</param>
    public static DataPrepManifest Publish(PackingPlan plan, IReadOnlyList<ShardReceipt> receipts, string folder)
    {
        var ordered = receipts.OrderBy(r => r.Shard).ToList();
        if (ordered.Count != plan.ShardCount || ordered.Select(r => r.Shard).Distinct().Count() != plan.ShardCount || ordered.Any(r => r.PlanId != plan.PlanId))
        {
            throw new InvalidDataException($"got {ordered.Count} shard receipt(s) for a plan of {plan.ShardCount}: refusing to publish a partial output");
        }

        Directory.CreateDirectory(folder);
        var stats = DataPrepStatistics.From(plan);
        var statsPath = Path.Combine(folder, StatisticsFileName);
        PackedShardWriter.WriteJsonAtomically(statsPath, stats);
        StatisticsChart.SaveLengthHistogram(stats, Path.Combine(folder, LengthChartFileName));
        StatisticsChart.SaveSourceMix(stats, Path.Combine(folder, SourceChartFileName));

        var manifest = new DataPrepManifest(
            DataPrepManifest.FormatName,
            plan.PlanId,
            plan.TokenizerId,
            plan.BosId,
            plan.SeparatorId,
            plan.Options.ContextLength,
            plan.SequenceCount,
            plan.SequenceCount * plan.Options.ContextLength,
            plan.DroppedTailTokens,
            plan.ShardCount,
            [.. ordered.Select(r => new ManifestShard(r.File, r.Sha256, r.Bytes, r.Rows, r.Tokens, r.FirstSequence))],
            [.. plan.Inputs.Select(i => new ManifestInput(i.FileKey, i.Header.InputSha256, i.Header.InputBytes, i.Header.Documents, i.Header.Tokens, i.Header.Skipped.Skipped))],
            StatisticsFileName,
            PackedShardWriter.Hash(statsPath).Sha256,
            plan.Options);
        PackedShardWriter.WriteJsonAtomically(Path.Combine(folder, DataPrepManifest.FileName), manifest);
        return manifest;
    }

    /// <summary>The files <see cref="Publish"/> writes, manifest last.</summary>
    public static IReadOnlyList<string> PublishedFiles { get; } = [StatisticsFileName, LengthChartFileName, SourceChartFileName, DataPrepManifest.FileName];

    public static DataPrepManifest? ReadManifest(string outFolder)
    {
        var path = Path.Combine(outFolder, DataPrepManifest.FileName);
        return File.Exists(path) ? JsonSerializer.Deserialize<DataPrepManifest>(File.ReadAllBytes(path), ReportJson.Options) : null;
    }

    private static ShardReceipt? ReadReceipt(string outFolder, int shard)
    {
        var path = PackedShardWriter.ReceiptPath(outFolder, shard);
        return File.Exists(path) ? JsonSerializer.Deserialize<ShardReceipt>(File.ReadAllBytes(path), ReportJson.Options) : null;
    }

    /// <summary>A manifest of another plan must not outlive the shards this run is about to overwrite.</summary>
    private static void RemoveStaleManifest(string outFolder, string planId)
    {
        var path = Path.Combine(outFolder, DataPrepManifest.FileName);
        if (File.Exists(path))
        {
            using var json = JsonDocument.Parse(File.ReadAllBytes(path));
            if (!json.RootElement.TryGetProperty("planId", out var id) || id.GetString() != planId)
            {
                File.Delete(path);
            }
        }
    }

    /// <param name="measured">Indexes this task has just measured (and hashed): taken as they are, not hashed again.</param>
    private static async Task<IReadOnlyList<LengthIndex>> WaitForIndexesAsync(IReadOnlyList<InputFile> inputs,
        IReadOnlyDictionary<string, LengthIndex> measured, string indexFolder,
        DataPrepOptions options, ITokenizer tokenizer, CancellationToken cancellationToken)
    {
        var found = inputs.Select(i => measured.GetValueOrDefault(i.Key)).ToArray();
        var shas = inputs.Select((i, k) => found[k] is null ? CorpusMeasurer.Sha256Of(i.Path) : null).ToArray();
        var fingerprint = CorpusMeasurer.ReaderFingerprint(options.Reader);
        while (true)
        {
            for (var i = 0; i < inputs.Count; i++)
            {
                // Only an index of these very bytes, read and tokenized this way, counts; an older one is waited out.
                found[i] ??= LengthIndexStore.TryLoad(indexFolder, inputs[i].Key) is { } index
                    && index.Header.InputSha256 == shas[i] && index.Header.ReaderFingerprint == fingerprint && index.Header.TokenizerId == tokenizer.Id
                    ? index : null;
            }

            if (found.All(f => f is not null))
            {
                return found!;
            }

            await Task.Delay(100, cancellationToken);
        }
    }
}
