using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.DomainLoss;

/// <summary>
/// Turns per-token losses into the numbers of the report, by the definition in docs/evaluation.md:
/// <list type="bullet">
/// <item><b>Buckets (Table 5)</b>: one held-out document per sequence, BOS at position 0, cut to the largest bucket
/// end. Target position t (1 ≤ t &lt; n) is the token predicted from the t tokens before it (BOS included); it
/// counts in bucket [a, b) when a ≤ t &lt; b. The bucket's loss is the token-weighted mean over every target of
/// every document of the source (BOS itself is never a target). A document shorter than a bucket's start
/// contributes nothing to it.</item>
/// <item><b>Loss@N (Fig. 3)</b>: held-out documents of one source, each with its BOS, concatenated and cut into
/// sequences of exactly N tokens (as training packs them); the mean over all N − 1 targets of every sequence.</item>
/// </list>
/// Losses are natural-log cross-entropy. The model side supplies, for a sequence of n ids, the n − 1 losses of
/// targets 1 … n − 1 in order.
/// </summary>
public sealed class DomainLossAccumulator(IReadOnlyList<LengthBucket> buckets)
{
    private readonly Dictionary<(int Bucket, SlimPajamaSource Source), (double Sum, long Count)> _buckets = [];
    private readonly Dictionary<(long Length, SlimPajamaSource Source), (double Sum, long Count)> _lengths = [];

    public IReadOnlyList<LengthBucket> BucketDefinitions { get; } = buckets;

    /// <summary>Adds one document-sequence's target losses (index i = target position i + 1).</summary>
    public void AddDocument(SlimPajamaSource source, ReadOnlySpan<float> targetLosses)
    {
        for (var b = 0; b < BucketDefinitions.Count; b++)
        {
            var bucket = BucketDefinitions[b];
            // target position t = i + 1 must satisfy From ≤ t < To
            var first = (int)Math.Max(0, bucket.From - 1);
            var end = (int)Math.Min(targetLosses.Length, bucket.To - 1);
            if (first >= end)
            {
                continue;
            }

            var sum = 0.0;
            for (var i = first; i < end; i++)
            {
                sum += targetLosses[i];
            }

            var (s, c) = _buckets.GetValueOrDefault((b, source));
            _buckets[(b, source)] = (s + sum, c + (end - first));
        }
    }

    /// <summary>Adds one packed sequence of <paramref name="length"/> ids: its <c>length − 1</c> target losses.</summary>
    public void AddPackedSequence(SlimPajamaSource source, long length, ReadOnlySpan<float> targetLosses)
    {
        if (targetLosses.Length != length - 1)
        {
            throw new ArgumentException($"a sequence of {length} ids has {length - 1} targets, got {targetLosses.Length}", nameof(targetLosses));
        }

        var sum = 0.0;
        foreach (var l in targetLosses)
        {
            sum += l;
        }

        var (s, c) = _lengths.GetValueOrDefault((length, source));
        _lengths[(length, source)] = (s + sum, c + targetLosses.Length);
    }

    public DomainLossReport ToReport(string experiment) => new(
        experiment,
        _buckets.OrderBy(kv => kv.Key.Bucket).ThenBy(kv => kv.Key.Source)
            .Select(kv => new DomainLossEntry(BucketDefinitions[kv.Key.Bucket].ToString(), kv.Key.Source, kv.Value.Sum / kv.Value.Count, kv.Value.Count))
            .ToList(),
        _lengths.OrderBy(kv => kv.Key.Length).ThenBy(kv => kv.Key.Source)
            .Select(kv => new LengthLossEntry(kv.Key.Length, kv.Key.Source, kv.Value.Sum / kv.Value.Count, kv.Value.Count))
            .ToList());
}

/// <summary>The id sequences the definition above evaluates, built from tokenised held-out documents (no model needed).</summary>
public static class DomainLossSequences
{
    /// <summary>One sequence per document: BOS (when the tokenizer has one) + the document's ids, cut to <paramref name="maxLength"/>.</summary>
    public static IEnumerable<int[]> Documents(IEnumerable<IReadOnlyList<int>> documents, int? bos, long maxLength)
    {
        foreach (var doc in documents)
        {
            var n = (int)Math.Min(maxLength, doc.Count + (bos is null ? 0 : 1));
            if (n < 2)
            {
                continue; // no target
            }

            var seq = new int[n];
            var at = 0;
            if (bos is { } b)
            {
                seq[at++] = b;
            }

            for (var i = 0; at < n; i++)
            {
                seq[at++] = doc[i];
            }

            yield return seq;
        }
    }

    /// <summary>
    /// Documents concatenated (each preceded by BOS when there is one) and cut into sequences of exactly
    /// <paramref name="length"/> ids; an incomplete tail is dropped.
    /// </summary>
    public static IEnumerable<int[]> Packed(IEnumerable<IReadOnlyList<int>> documents, int? bos, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 2);
        var buffer = new List<int>(length);
        foreach (var doc in documents)
        {
            if (bos is { } b)
            {
                buffer.Add(b);
                if (buffer.Count == length)
                {
                    yield return [.. buffer];
                    buffer.Clear();
                }
            }

            foreach (var id in doc)
            {
                buffer.Add(id);
                if (buffer.Count == length)
                {
                    yield return [.. buffer];
                    buffer.Clear();
                }
            }
        }
    }
}
