using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Statistics;

/// <summary>
/// Length distributions for the planner (<see cref="CorpusStatistics"/>) from data prep's measure pass: one file's
/// documents binned by token and character length per source. Measuring a file is tokenizing it (data prep's pass 1
/// without the token cache); the result is cached by the file's SHA-256, the tokenizer and the reader settings, so a
/// corpus is measured once.
/// </summary>
public static class CorpusStatisticsBuilder
{
    /// <summary>One file's statistics from its length index (documents of zero tokens are left out, as data prep does).</summary>
    public static CorpusStatistics FromIndex(LengthIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        var cells = new Dictionary<(SlimPajamaSource, int, int), LengthCell>();
        foreach (var d in index.Documents)
        {
            if (d.Tokens <= 0)
            {
                continue;
            }

            var key = (d.Source, CorpusStatistics.Bin(d.Tokens), CorpusStatistics.Bin(Math.Max(1, d.Chars)));
            var cell = new LengthCell(key.Item2, key.Item3, 1, d.Tokens, d.Chars, (double)d.Tokens * d.Tokens);
            cells[key] = cells.TryGetValue(key, out var had) ? had.Plus(cell) : cell;
        }

        var sources = cells.GroupBy(c => c.Key.Item1).ToDictionary(g => g.Key, g => SourceLengths.From(g.Select(c => c.Value)));
        var h = index.Header;
        return new CorpusStatistics(CorpusStatistics.FormatName, h.FileKey, h.TokenizerId,
            [new CorpusStatisticsFile(h.FileKey, h.InputSha256, index.Documents.Count(d => d.Tokens > 0), h.Tokens, h.Chars)], sources);
    }

    /// <summary>Cache key of one file's statistics: what decides them (bytes, tokenizer, reader settings).</summary>
    public static string CacheKey(string sha256, string tokenizerId, CorpusReaderOptions reader) =>
        CorpusMeasurer.ContentKey(sha256, tokenizerId, reader);

    /// <summary>
    /// Statistics of each file, from <paramref name="cache"/> where it has them, else measured (and stored there).
    /// <paramref name="cache"/> gets (key) → stored JSON or null, and (key, JSON) to store; the CLI backs it by a
    /// per-user folder and, at <c>wf corpus upload</c>, by the blob store.
    /// </summary>
    public static async Task<IReadOnlyList<CorpusStatistics>> MeasureAsync(
        IReadOnlyList<InputFile> files,
        ITokenizer tokenizer,
        CorpusReaderOptions reader,
        IStatisticsCache cache,
        int threads,
        Action<InputFile, bool>? onFile,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(cache);
        var result = new List<CorpusStatistics>();
        using var workers = new MeasureWorkers(threads);
        foreach (var file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var sha = await Task.Run(() => CorpusMeasurer.Sha256Of(file.Path), cancellationToken).ConfigureAwait(false);
            var key = CacheKey(sha, tokenizer.Id, reader);
            if (await cache.TryGetAsync(key, cancellationToken).ConfigureAwait(false) is { } json
                && System.Text.Json.JsonSerializer.Deserialize<CorpusStatistics>(json, CorpusStatistics.Json) is { Format: CorpusStatistics.FormatName } cached)
            {
                // Cached under the file's content: its key (path within this corpus) may differ from when it was measured.
                result.Add(cached with { Name = file.Key, Files = [.. cached.Files.Select(f => f with { Key = file.Key })] });
                onFile?.Invoke(file, true);
                continue;
            }

            var index = await Task.Run(() => CorpusMeasurer.MeasureLengths(file, reader, tokenizer, workers, null, cancellationToken, sha), cancellationToken)
                .ConfigureAwait(false);
            var stats = FromIndex(index);
            await cache.PutAsync(key, stats.ToJson(), cancellationToken).ConfigureAwait(false);
            result.Add(stats);
            onFile?.Invoke(file, false);
        }

        return result;
    }

    /// <summary>What a packing plan selected, per source, for the planner (<c>wf plan --input</c>).</summary>
    public static SelectionOutcome Outcome(DataPrepStatistics statistics, string description)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        var sources = new Dictionary<SlimPajamaSource, SourceOutcome>();
        foreach (var s in statistics.After.Sources)
        {
            if (SlimPajama.TryParse(s.Source, out var source))
            {
                sources[source] = new SourceOutcome(s.Documents, s.Tokens, s.LongTokenShare, [.. s.Histogram.Select(b => b.Tokens)]);
            }
        }

        return new SelectionOutcome(description, sources, statistics.PackedSequences);
    }
}

/// <summary>Where measured statistics of single files are kept (by <see cref="CorpusStatisticsBuilder.CacheKey"/>).</summary>
public interface IStatisticsCache
{
    Task<string?> TryGetAsync(string key, CancellationToken cancellationToken);

    Task PutAsync(string key, string json, CancellationToken cancellationToken);
}

/// <summary>A folder of <c>KEY.json</c> files (written atomically); the CLI uses a per-user cache folder.</summary>
public sealed class FolderStatisticsCache(string folder) : IStatisticsCache
{
    public string Folder { get; } = folder;

    public async Task<string?> TryGetAsync(string key, CancellationToken cancellationToken)
    {
        var path = Path.Combine(Folder, key + ".json");
        return File.Exists(path) ? await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false) : null;
    }

    public async Task PutAsync(string key, string json, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Folder);
        var path = Path.Combine(Folder, key + ".json");
        var temp = $"{path}.tmp-{Environment.ProcessId}";
        await File.WriteAllTextAsync(temp, json, cancellationToken).ConfigureAwait(false);
        File.Move(temp, path, overwrite: true);
    }
}
