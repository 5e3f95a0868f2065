using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Selection;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Statistics;

/// <summary>One bucket of the paper's Fig. 2 length histogram (token lengths, K = 1024).</summary>
public sealed record LengthBucket(string Label, long Documents, long Tokens, double TokenShare);

/// <summary>Per-source figures for one side (before or after selection).</summary>
public sealed record SourceStatistics(
    string Source,
    long Documents,
    long Tokens,
    double TokenShare,
    double? RequestedShare,
    double LongDocumentShare,
    double LongTokenShare,
    IReadOnlyList<LengthBucket> Histogram);

public sealed record MixtureStatistics(
    long Documents,
    long Tokens,
    double LongDocumentShare,
    double LongTokenShare,
    IReadOnlyList<LengthBucket> Histogram,
    IReadOnlyList<SourceStatistics> Sources);

/// <summary>
/// Before/after statistics of a plan. "Before" counts every non-empty document of the inputs; "after" counts every
/// selected piece (a cut or truncated document counts at its taken length). Lengths are exact token counts without
/// BOS/separator; "long" is at least <see cref="LongThreshold"/> tokens.
/// </summary>
public sealed record DataPrepStatistics(
    string PlanId,
    string Mode,
    string LengthMeasure,
    double Budget,
    int LongThreshold,
    MixtureStatistics Before,
    MixtureStatistics After,
    long PackedSequences,
    long PackedTokens,
    long DroppedTailTokens,
    long SkippedRecords,
    double MaxMixDeviation)
{
    /// <summary>Lower bounds of Fig. 2's buckets: 0-1K, 1-2K, 2-4K, 4-8K, 8-16K, 16-32K, 32-64K, 64-128K, &gt;128K.</summary>
    public static readonly long[] BucketStarts = [0, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];

    public static readonly string[] BucketLabels = ["0-1K", "1-2K", "2-4K", "4-8K", "8-16K", "16-32K", "32-64K", "64-128K", ">128K"];

    public static DataPrepStatistics From(PackingPlan plan)
    {
        var threshold = plan.Options.LongThreshold;
        var before = new Accumulator();
        foreach (var input in plan.Inputs)
        {
            foreach (var d in input.Documents)
            {
                if (d.Tokens > 0)
                {
                    before.Add(d.Source, d.Tokens, threshold);
                }
            }
        }

        var after = new Accumulator();
        foreach (var p in plan.Pieces)
        {
            after.Add(p.Source, p.TokenCount, threshold);
        }

        var afterStats = after.ToStatistics(plan.RequestedMix);
        var deviation = plan.RequestedMix is null
            ? 0
            : afterStats.Sources.Max(s => Math.Abs(s.TokenShare - (s.RequestedShare ?? 0)));
        return new DataPrepStatistics(
            plan.PlanId,
            plan.Options.Mode.ToString(),
            plan.Options.LengthMeasure.ToString(),
            plan.Budget,
            threshold,
            before.ToStatistics(null),
            afterStats,
            plan.SequenceCount,
            plan.SequenceCount * plan.Options.ContextLength,
            plan.DroppedTailTokens,
            plan.Inputs.Sum(i => i.Header.Skipped.Skipped),
            deviation);
    }

    public static int BucketOf(long tokens)
    {
        var b = Array.BinarySearch(BucketStarts, tokens);
        return b >= 0 ? b : ~b - 1;
    }

    private sealed class Accumulator
    {
        private readonly long[,] docs = new long[SlimPajama.Sources.Count, BucketStarts.Length];
        private readonly long[,] tokens = new long[SlimPajama.Sources.Count, BucketStarts.Length];
        private readonly long[] longDocs = new long[SlimPajama.Sources.Count];
        private readonly long[] longTokens = new long[SlimPajama.Sources.Count];

        public void Add(SlimPajamaSource source, long length, int threshold)
        {
            var s = (int)source;
            var b = BucketOf(length);
            docs[s, b]++;
            tokens[s, b] += length;
            if (length >= threshold)
            {
                longDocs[s]++;
                longTokens[s] += length;
            }
        }

        public MixtureStatistics ToStatistics(IReadOnlyDictionary<SlimPajamaSource, double>? requested)
        {
            long allDocs = 0, allTokens = 0, allLongDocs = 0, allLongTokens = 0;
            var bucketDocs = new long[BucketStarts.Length];
            var bucketTokens = new long[BucketStarts.Length];
            foreach (var source in SlimPajama.Sources)
            {
                var s = (int)source;
                for (var b = 0; b < BucketStarts.Length; b++)
                {
                    bucketDocs[b] += docs[s, b];
                    bucketTokens[b] += tokens[s, b];
                }

                allLongDocs += longDocs[s];
                allLongTokens += longTokens[s];
            }

            allDocs = bucketDocs.Sum();
            allTokens = bucketTokens.Sum();
            var sources = new List<SourceStatistics>();
            foreach (var source in SlimPajama.Sources)
            {
                var s = (int)source;
                var d = Enumerable.Range(0, BucketStarts.Length).Sum(b => docs[s, b]);
                var t = Enumerable.Range(0, BucketStarts.Length).Sum(b => tokens[s, b]);
                var histogram = Enumerable.Range(0, BucketStarts.Length)
                    .Select(b => new LengthBucket(BucketLabels[b], docs[s, b], tokens[s, b], Share(tokens[s, b], t)))
                    .ToList();
                sources.Add(new SourceStatistics(source.SetName(), d, t, Share(t, allTokens),
                    requested?.GetValueOrDefault(source), Share(longDocs[s], d), Share(longTokens[s], t), histogram));
            }

            var total = Enumerable.Range(0, BucketStarts.Length)
                .Select(b => new LengthBucket(BucketLabels[b], bucketDocs[b], bucketTokens[b], Share(bucketTokens[b], allTokens)))
                .ToList();
            return new MixtureStatistics(allDocs, allTokens, Share(allLongDocs, allDocs), Share(allLongTokens, allTokens), total, sources);
        }

        private static double Share(long part, long whole) => whole == 0 ? 0 : (double)part / whole;
    }
}
