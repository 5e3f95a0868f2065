using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>What the selection rule is expected to take from one source of a measured corpus.</summary>
/// <param name="NaturalLongShare">Share of the source's tokens in documents of at least long_threshold tokens.</param>
/// <param name="ExpectedLongShare">The same share among the selected tokens.</param>
/// <param name="LongShareSd">Sampling spread of <paramref name="ExpectedLongShare"/> (one standard deviation) from the
/// random keep draws and which documents come first; large on small corpora, negligible on SlimPajama.</param>
/// <param name="AvailableTokens">Tokens the rule could take in one pass (long documents, plus the kept share of short ones).</param>
/// <param name="EpochsNeeded">Passes over the source its budget needs; above 1 the source cannot serve its budget, and
/// data prep (which reads each document once) gives it less.</param>
/// <param name="ExpectedTokens">Tokens data prep is expected to select (overshoot included).</param>
/// <param name="ExpectedDocuments">Documents (or pieces) selected, each packed with one BOS or separator.</param>
/// <param name="OvershootTokens">budget_rule: paper only — expected tokens taken beyond the budget by the document that crosses it.</param>
/// <param name="BucketsBefore">Tokens per Fig. 2 length bucket before selection (last: beyond 128K).</param>
/// <param name="BucketsAfter">Tokens per bucket after selection.</param>
public sealed record SourceForecast(
    double NaturalLongShare,
    double ExpectedLongShare,
    double LongShareSd,
    double AvailableTokens,
    double EpochsNeeded,
    double ExpectedTokens,
    double ExpectedDocuments,
    double OvershootTokens,
    IReadOnlyList<double> BucketsBefore,
    IReadOnlyList<double> BucketsAfter);

/// <summary>
/// Evaluates an experiment's selection rule on measured length distributions (<see cref="CorpusStatistics"/>) in
/// expectation, the way data prep applies it (<c>SelectionPlanner</c>): a document is long when its length in the
/// experiment's measure (exact tokens, or characters / chars_per_token) reaches long_threshold; per-source and upsample
/// modes give each source budget × weight in that measure; short documents are kept with probability short_keep_ratio
/// (or filled to 1 − target_long_fraction); documents are visited in random order until a budget is met. Shares are
/// reported as data prep's statistics count them: by exact token length.
/// </summary>
public static class SelectionForecaster
{
    private const int Long = 0;
    private const int Short = 1;

    /// <summary>One source split by "long in the selection's measure" (group) and "long by exact tokens".</summary>
    private sealed class Groups
    {
        public readonly double[] Documents = new double[2];
        public readonly double[] Tokens = new double[2];
        public readonly double[] LongTokens = new double[2];
        public readonly double[] Measure = new double[2];
        public readonly double[] SquaresLong = new double[2];
        public readonly double[] SquaresShort = new double[2];
        public readonly double[][] Buckets = [new double[PaperFigure2.BucketStarts.Count], new double[PaperFigure2.BucketStarts.Count]];

        public double AllTokens => Tokens[Long] + Tokens[Short];
    }

    /// <param name="weights">Requested source weights (per-source and upsample modes; the others use the corpus's own mix).</param>
    public static IReadOnlyDictionary<SlimPajamaSource, SourceForecast> Forecast(
        ExperimentSpec spec, CorpusStatistics statistics, IReadOnlyDictionary<SlimPajamaSource, double> weights)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(statistics);
        var data = spec.Data;
        var up = data.Upsampling;
        var groups = SlimPajama.Sources.ToDictionary(s => s, s => Split(statistics.Sources.GetValueOrDefault(s), up));
        var perSource = up.Mode is UpsamplingMode.PerSource or UpsamplingMode.Upsample;
        var keepShort = up.Mode is UpsamplingMode.None or UpsamplingMode.Cut ? 1.0 : up.ShortKeepRatio;
        double Eligible(Groups g) => g.Measure[Long] + (keepShort * g.Measure[Short]);

        // Modes without per-source budgets visit the whole corpus until one overall budget is met.
        var overall = groups.Values.Sum(Eligible);
        var overallFraction = overall > 0 ? Math.Min(1, data.TokenBudget / overall) : 0;

        var result = new Dictionary<SlimPajamaSource, SourceForecast>();
        foreach (var (source, g) in groups)
        {
            double includeLong, includeShort, epochs, available;
            if (perSource && up.TargetLongFraction is { } target)
            {
                var budget = data.TokenBudget * weights.GetValueOrDefault(source);
                var measured = g.Measure[Long] + g.Measure[Short];
                var longShare = g.Measure[Long] > 0 ? Math.Max(target, g.Measure[Long] / measured) : 0;
                var needLong = g.Measure[Long] > 0 ? budget * longShare / g.Measure[Long] : 0;
                var needShort = g.Measure[Short] > 0 ? budget * (1 - longShare) / g.Measure[Short] : (budget * (1 - longShare) > 0 ? double.PositiveInfinity : 0);
                includeLong = Math.Min(1, needLong);
                includeShort = Math.Min(1, needShort);
                epochs = Math.Max(needLong, needShort);
                available = g.AllTokens;
            }
            else
            {
                var eligible = Eligible(g);
                var budget = perSource ? data.TokenBudget * weights.GetValueOrDefault(source) : overallFraction * eligible;
                var fraction = eligible > 0 ? Math.Min(1, budget / eligible) : 0;
                epochs = eligible > 0 ? (perSource ? budget / eligible : data.TokenBudget / overall) : (budget > 0 ? double.PositiveInfinity : 0);
                includeLong = fraction;
                includeShort = fraction * keepShort;
                available = g.Tokens[Long] + (keepShort * g.Tokens[Short]);
            }

            double[] include = [includeLong, includeShort];
            var tokens = include[Long] * g.Tokens[Long] + include[Short] * g.Tokens[Short];
            var longTokens = include[Long] * g.LongTokens[Long] + include[Short] * g.LongTokens[Short];
            var share = tokens > 0 ? longTokens / tokens : 0;
            // Delta method on share = long / all, each document in with probability include[group]. With a keep
            // ratio, how many short tokens come in is itself random, so deviations count against the overall share.
            // Quotas (target_long_fraction) fix each group's total instead: only the mix inside a group varies.
            var quotas = perSource && up.TargetLongFraction is not null;
            double variance = 0;
            for (var k = 0; k < 2; k++)
            {
                var centre = quotas ? (g.Tokens[k] > 0 ? g.LongTokens[k] / g.Tokens[k] : 0) : share;
                variance += include[k] * (1 - include[k]) * ((g.SquaresLong[k] * (1 - centre) * (1 - centre)) + (g.SquaresShort[k] * centre * centre));
            }

            if (quotas && data.BudgetRule == BudgetRule.Exact && includeLong is > 0 and < 1 && includeShort < 1 && g.Documents[Long] > 0)
            {
                // Long quotas take whole long documents, or one cut to no less than the threshold. When the room left is
                // under one threshold the rest goes to the short quota (the source still meets its budget). With the room
                // about uniform over the crossing document's length L (≥ T), that happens with probability T / L and moves
                // T / 2 on average; over size-biased L the expected move is T² / (2 · mean long length).
                var t = (double)up.LongThreshold;
                var meanLength = g.Measure[Long] / g.Documents[Long];
                // Only as much as the short documents not yet taken can absorb moves (none for a source without them).
                var spare = g.Measure[Short] * (1 - includeShort);
                var absorbed = Math.Min(1, spare / (t * t / (2 * meanLength)));
                var moved = absorbed * t * t / (2 * meanLength);
                var movedSquared = absorbed * t * t * t / (3 * meanLength);
                var tokensPerUnit = g.Tokens[Long] / g.Measure[Long];
                var longInLong = g.LongTokens[Long] / g.Tokens[Long];
                var longInShort = g.Tokens[Short] > 0 ? g.LongTokens[Short] / g.Tokens[Short] : 0;
                var perUnit = tokensPerUnit * (longInLong - longInShort);
                longTokens -= moved * perUnit;
                share = tokens > 0 ? longTokens / tokens : 0;
                variance += (movedSquared - (moved * moved)) * perUnit * perUnit;
            }

            var overshoot = 0.0;
            if (data.BudgetRule == BudgetRule.Paper && perSource && epochs > 1e-12 && epochs < 1)
            {
                // The document that crosses the budget is drawn in proportion to its length among the eligible ones
                // (size-biased), and on average half of it lies beyond the budget: E[L²] / (2 E[L]).
                var keep = up.TargetLongFraction is null ? new[] { 1.0, keepShort } : [1.0, 1.0];
                var squares = keep[Long] * (g.SquaresLong[Long] + g.SquaresShort[Long]) + keep[Short] * (g.SquaresLong[Short] + g.SquaresShort[Short]);
                var mass = keep[Long] * g.Tokens[Long] + keep[Short] * g.Tokens[Short];
                overshoot = mass > 0 ? squares / (2 * mass) : 0;
            }

            var after = new double[PaperFigure2.BucketStarts.Count];
            var before = new double[PaperFigure2.BucketStarts.Count];
            for (var b = 0; b < after.Length; b++)
            {
                before[b] = g.Buckets[Long][b] + g.Buckets[Short][b];
                after[b] = include[Long] * g.Buckets[Long][b] + include[Short] * g.Buckets[Short][b];
            }

            if (up.Mode == UpsamplingMode.Cut)
            {
                // Every document is cut into pieces of cut_length: all tokens end in the bucket of the piece length or below.
                var pieceBucket = PaperFigure2.BucketOf(up.CutLength - 1);
                for (var b = pieceBucket + 1; b < after.Length; b++)
                {
                    after[pieceBucket] += after[b];
                    after[b] = 0;
                }

                longTokens = up.CutLength - 1 >= up.LongThreshold ? longTokens : 0;
                share = tokens > 0 ? longTokens / tokens : 0;
                variance = 0;
            }

            var documents = include[Long] * g.Documents[Long] + include[Short] * g.Documents[Short];
            if (up.Mode == UpsamplingMode.Cut)
            {
                documents = Math.Max(documents, tokens / Math.Max(1, up.CutLength - 1));
            }

            result[source] = new SourceForecast(
                g.AllTokens > 0 ? (g.LongTokens[Long] + g.LongTokens[Short]) / g.AllTokens : 0,
                share,
                tokens > 0 ? Math.Sqrt(variance) / tokens : 0,
                available,
                epochs,
                tokens + overshoot,
                documents,
                overshoot,
                before,
                after);
        }

        return result;
    }

    /// <summary>
    /// Splits a source's cells by long-in-measure and long-by-tokens. A cell that straddles a threshold is split by the
    /// share of its log-width above it (lengths assumed log-uniform inside a 4.4%-wide bin); with the tokens measure and
    /// a power-of-two threshold (4K) nothing straddles.
    /// </summary>
    private static Groups Split(SourceLengths? lengths, UpsamplingSpec up)
    {
        var g = new Groups();
        if (lengths is null)
        {
            return g;
        }

        var threshold = (double)up.LongThreshold;
        var charThreshold = threshold * up.CharsPerToken;
        foreach (var c in lengths.Cells)
        {
            var tokenLong = CorpusStatistics.ShareAtOrAbove(c.TokenBin, threshold);
            var bucket = PaperFigure2.BucketOf(CorpusStatistics.BinStart(c.TokenBin));
            if (up.LengthMeasure == LengthMeasure.Tokens)
            {
                Add(g, Long, c, tokenLong, 1, bucket, c.Tokens);
                Add(g, Short, c, 1 - tokenLong, 0, bucket, c.Tokens);
            }
            else
            {
                var measureLong = CorpusStatistics.ShareAtOrAbove(c.CharBin, charThreshold);
                var measureUnits = c.Chars / up.CharsPerToken;
                Add(g, Long, c, measureLong * tokenLong, 1, bucket, measureUnits);
                Add(g, Long, c, measureLong * (1 - tokenLong), 0, bucket, measureUnits);
                Add(g, Short, c, (1 - measureLong) * tokenLong, 1, bucket, measureUnits);
                Add(g, Short, c, (1 - measureLong) * (1 - tokenLong), 0, bucket, measureUnits);
            }
        }

        return g;
    }

    private static void Add(Groups g, int group, LengthCell c, double share, double tokenLong, int bucket, double measureUnits)
    {
        if (share <= 0)
        {
            return;
        }

        g.Documents[group] += share * c.Documents;
        g.Tokens[group] += share * c.Tokens;
        g.Measure[group] += share * measureUnits;
        g.Buckets[group][bucket] += share * c.Tokens;
        g.LongTokens[group] += share * tokenLong * c.Tokens;
        g.SquaresLong[group] += share * tokenLong * c.TokensSquared;
        g.SquaresShort[group] += share * (1 - tokenLong) * c.TokensSquared;
    }
}
