using System.Globalization;
using Spectre.Console;
using Workflows.Artifacts;
using Workflows.Artifacts.Corpora;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Statistics;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;

namespace Workflows.Cli.Commands;

/// <summary>Measuring corpus statistics for the planner: shared by <c>wf corpus stats</c>, <c>wf corpus upload</c> and <c>wf plan --input</c>.</summary>
public static class CorpusStatisticsCli
{
    /// <summary>Per-user cache of single files' statistics: a corpus is measured once per machine.</summary>
    public static FolderStatisticsCache UserCache() => new(Path.Combine(UserFolders.Cache(), "corpus-stats"));

    /// <summary>Statistics of <paramref name="files"/> as one corpus, each file from a cache or measured (one line per file).</summary>
    public static async Task<CorpusStatistics> MeasureAsync(CliContext cli, string name, IReadOnlyList<InputFile> files, ITokenizer tokenizer,
        IStatisticsCache cache, int threads, CancellationToken ct)
    {
        var perFile = await CorpusStatisticsBuilder.MeasureAsync(files, tokenizer, new CorpusReaderOptions(), cache, Math.Max(1, threads),
            (file, cached) => cli.Err.WriteLine($"{(cached ? "cached  " : "measured")}  {file.Key}"), ct);
        return CorpusStatistics.Merge(name, perFile);
    }

    /// <summary>Per source: documents, tokens, share, and the share of tokens in documents of at least 4K tokens.</summary>
    public static void Print(CliContext cli, CorpusStatistics stats)
    {
        var table = new Table
        {
            Title = new TableTitle($"{stats.Name}: {stats.Documents:N0} documents, {stats.Tokens:N0} tokens ({stats.Tokenizer})"),
            Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii,
        };
        foreach (var h in new[] { "source", "documents", "tokens", "share", "long share (>= 4K tokens)", "longest bin" })
        {
            table.AddColumn(h);
        }

        var longBin = CorpusStatistics.Bin(4096);
        foreach (var (source, lengths) in stats.Sources.OrderBy(s => s.Key))
        {
            var longTokens = lengths.Cells.Where(c => c.TokenBin >= longBin).Sum(c => c.Tokens);
            var longest = lengths.Cells.Max(c => c.TokenBin);
            table.AddRow(
                source.ToString(),
                lengths.Documents.ToString("N0", CultureInfo.InvariantCulture),
                lengths.Tokens.ToString("N0", CultureInfo.InvariantCulture),
                ((double)lengths.Tokens / stats.Tokens).ToString("P1", CultureInfo.InvariantCulture),
                ((double)longTokens / lengths.Tokens).ToString("P1", CultureInfo.InvariantCulture),
                $">= {CorpusStatistics.BinStart(longest):N0} tokens");
        }

        cli.Console.Write(table);
    }

    /// <summary>Writes the statistics as JSON, atomically.</summary>
    public static void Write(string path, CorpusStatistics stats)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = $"{full}.tmp-{Environment.ProcessId}";
        File.WriteAllText(temp, stats.ToJson());
        File.Move(temp, full, overwrite: true);
    }
}

/// <summary>Single files' statistics in the blob store (<c>corpora/blobs/KEY.stats.json</c>), so every machine that uploads the same bytes reuses them.</summary>
public sealed class BlobStatisticsCache(CorpusRegistry registry) : IStatisticsCache
{
    public Task<string?> TryGetAsync(string key, CancellationToken cancellationToken) =>
        registry.TryReadTextAsync(CorpusRegistry.FileStatisticsName(key), cancellationToken);

    public Task PutAsync(string key, string json, CancellationToken cancellationToken) =>
        registry.WriteTextAsync(CorpusRegistry.FileStatisticsName(key), json, cancellationToken);
}

/// <summary>Looks in the first cache, then the second (copying a hit into the first); stores in both.</summary>
public sealed class TieredStatisticsCache(IStatisticsCache near, IStatisticsCache far) : IStatisticsCache
{
    public async Task<string?> TryGetAsync(string key, CancellationToken cancellationToken)
    {
        if (await near.TryGetAsync(key, cancellationToken) is { } hit)
        {
            return hit;
        }

        var json = await far.TryGetAsync(key, cancellationToken);
        if (json is not null)
        {
            await near.PutAsync(key, json, cancellationToken);
        }

        return json;
    }

    public async Task PutAsync(string key, string json, CancellationToken cancellationToken)
    {
        await near.PutAsync(key, json, cancellationToken);
        await far.PutAsync(key, json, cancellationToken);
    }
}
