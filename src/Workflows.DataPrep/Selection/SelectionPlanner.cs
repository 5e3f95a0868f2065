using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Selection;

/// <summary>
/// Pass 2's pure function: (length indexes, options, tokenizer's BOS/EOS) → <see cref="PackingPlan"/>.
/// <para>
/// Every random choice is a keyed hash of (seed, file key, line, epoch), so the plan does not depend on input
/// order, thread count or how the work is split. Documents are visited in a hash-shuffled order (the released code
/// shuffles its stream); the selected pieces are then put in a second hash-shuffled order for packing, so that
/// repeats (epochs) and cut pieces of one document are scattered over the run.
/// </para>
/// </summary>
public static class SelectionPlanner
{
    public static PackingPlan Plan(IReadOnlyList<LengthIndex> indexes, DataPrepOptions options, ITokenizer tokenizer)
    {
        var separator = options.SeparatorId ?? (options.EosPerDocument ? tokenizer.EosId
            ?? throw new ArgumentException($"EosPerDocument is set but tokenizer {tokenizer.Id} has no EOS") : null);
        var bos = options.BosPerDocument ? tokenizer.BosId : null;
        return Plan(indexes, options, tokenizer.Id, bos, separator);
    }

    public static PackingPlan Plan(IReadOnlyList<LengthIndex> indexes, DataPrepOptions options, string tokenizerId, int? bosId, int? separatorId)
    {
        options.Validate();
        var inputs = indexes.OrderBy(i => i.FileKey, StringComparer.Ordinal).ToList();
        if (inputs.Count == 0)
        {
            throw new ArgumentException("No inputs to plan from.");
        }

        var duplicate = inputs.GroupBy(i => i.FileKey).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"Two inputs have the key \"{duplicate.Key}\".");
        }

        var foreign = inputs.FirstOrDefault(i => i.Header.TokenizerId != tokenizerId);
        if (foreign is not null)
        {
            throw new ArgumentException($"{foreign.FileKey} was measured with tokenizer {foreign.Header.TokenizerId}, not {tokenizerId}.");
        }

        var candidates = Candidates(inputs, options);
        if (candidates.Length == 0)
        {
            throw new ArgumentException("The inputs hold no non-empty documents.");
        }

        var overhead = (bosId is null ? 0 : 1) + (separatorId is null ? 0 : 1);
        var mix = options.Mode is SelectionMode.PerSource or SelectionMode.Upsample ? options.EffectiveMix() : null;
        var (selected, budget) = mix is null ? SelectOverall(candidates, options) : SelectPerSource(candidates, options, mix);
        var pieces = Cut(selected, candidates, options, overhead);
        var ordered = pieces
            .Select(p => (Key: StableHash.Combine(options.Seed, StableHash.PurposePackOrder, candidates[p.Candidate].FileHash,
                candidates[p.Candidate].Line, p.Piece.Epoch, p.Piece.Piece), p.Piece))
            .OrderBy(p => p.Key)
            .ThenBy(p => p.Piece.File).ThenBy(p => p.Piece.Document).ThenBy(p => p.Piece.Epoch).ThenBy(p => p.Piece.Piece)
            .Select(p => p.Piece)
            .ToArray();
        var plan = new PackingPlan(options, inputs, ordered, bosId, separatorId, tokenizerId, budget, mix,
            PlanId(options, inputs, tokenizerId, bosId, separatorId));
        if (plan.SequenceCount == 0)
        {
            throw new InvalidOperationException(
                $"The selection holds {plan.StreamTokens:N0} tokens, fewer than one sequence of {options.ContextLength:N0}.");
        }

        return plan;
    }

    private readonly record struct Candidate(int File, int Document, long Line, ulong FileHash, SlimPajamaSource Source, double Length, int Tokens, bool IsLong);

    private readonly record struct Selected(int Candidate, int Epoch, int Tokens);

    private static Candidate[] Candidates(List<LengthIndex> inputs, DataPrepOptions options)
    {
        var list = new List<Candidate>();
        for (var f = 0; f < inputs.Count; f++)
        {
            var fileHash = StableHash.OfKey(inputs[f].FileKey);
            var docs = inputs[f].Documents;
            for (var d = 0; d < docs.Count; d++)
            {
                var doc = docs[d];
                if (doc.Tokens == 0)
                {
                    continue; // an empty document would pack as a lone BOS
                }

                var length = options.LengthMeasure == LengthMeasure.ExactTokens ? doc.Tokens : doc.Chars / options.CharsPerToken;
                list.Add(new Candidate(f, d, doc.Line, fileHash, doc.Source, length, doc.Tokens, options.IsLong(length)));
            }
        }

        return [.. list];
    }

    private static Candidate[] VisitOrder(Candidate[] candidates, ulong seed, int epoch) =>
        [.. candidates
            .Select(c => (Key: StableHash.Combine(seed, StableHash.PurposeVisitOrder, c.FileHash, c.Line, epoch), c))
            .OrderBy(x => x.Key).ThenBy(x => x.c.File).ThenBy(x => x.c.Document)
            .Select(x => x.c)];

    /// <summary>The released code's short-document draw: keep when u &lt; ratio (it skips when rand() &gt; ratio).</summary>
    private static bool KeepShort(Candidate c, DataPrepOptions options, int epoch) =>
        StableHash.ToUnit(StableHash.Combine(options.Seed, StableHash.PurposeKeep, c.FileHash, c.Line, epoch)) < options.ShortKeepRatio;

    /// <summary>
    /// Tokens to take from a candidate when <paramref name="room"/> (length units) is left in its budget; 0 = skip it.
    /// Truncate: a document longer than the room is cut to it, except that a long document is never cut below the
    /// long threshold (that would turn it into a short one); it is skipped and shorter documents fill the room.
    /// </summary>
    private static (int Tokens, double Used) Take(Candidate c, double room, DataPrepOptions options)
    {
        if (options.Overflow == BudgetOverflow.Overshoot || c.Length <= room)
        {
            return (c.Tokens, c.Length);
        }

        if (c.IsLong && !options.IsLong(room))
        {
            return (0, 0);
        }

        var tokens = (int)Math.Clamp(Math.Ceiling(c.Tokens * room / c.Length), 1, c.Tokens);
        return (tokens, room);
    }

    private const double Epsilon = 1e-9;

    /// <summary>
    /// Original, CutAt4K, Global. Original/CutAt4K keep every document; Global keeps long ones and short ones with
    /// probability ShortKeepRatio, regardless of source. With a budget, documents are taken in visit order until the
    /// budget is met.
    /// </summary>
    private static (List<Selected>, double) SelectOverall(Candidate[] candidates, DataPrepOptions options)
    {
        var selected = new List<Selected>();
        double used = 0;
        var budget = options.TokenBudget ?? double.PositiveInfinity;
        var epochs = options.TokenBudget is null ? 1 : options.MaxEpochs;
        for (var epoch = 0; epoch < epochs && used < budget - Epsilon; epoch++)
        {
            foreach (var c in VisitOrder(candidates, options.Seed, epoch))
            {
                if (used >= budget - Epsilon)
                {
                    break;
                }

                if (options.Mode == SelectionMode.Global && !c.IsLong && !KeepShort(c, options, epoch))
                {
                    continue;
                }

                var (tokens, u) = Take(c, budget - used, options);
                if (tokens == 0)
                {
                    continue;
                }

                selected.Add(new Selected(IndexOf(c), epoch, tokens));
                used += u;
            }
        }

        return (selected, options.TokenBudget ?? used);

        int IndexOf(Candidate c) => Array.BinarySearch(candidates, c, CandidateOrder.Instance);
    }

    /// <summary>
    /// PerSource and Upsample: budget[s] = budget × weight[s]. Visiting documents in order, a source whose count
    /// reached its budget takes nothing more; a short document is kept with probability ShortKeepRatio; a kept
    /// document adds its length to its source's count. With TargetLongFraction f instead, each source has a long
    /// quota max(f, its natural long share) × budget[s] (0 for a source without long documents) and a short quota
    /// for the rest, filled in visit order without random draws. Without a given budget, the budget is the largest
    /// every source can meet.
    /// </summary>
    private static (List<Selected>, double) SelectPerSource(Candidate[] candidates, DataPrepOptions options, IReadOnlyDictionary<SlimPajamaSource, double> mix)
    {
        var sources = SlimPajama.Sources;
        var longTotal = new double[sources.Count];
        var shortTotal = new double[sources.Count];
        var eligible = new double[sources.Count];
        foreach (var c in candidates)
        {
            var s = (int)c.Source;
            (c.IsLong ? longTotal : shortTotal)[s] += c.Length;
            if (c.IsLong || KeepShort(c, options, 0))
            {
                eligible[s] += c.Length;
            }
        }

        var target = options.TargetLongFraction;
        var longShare = new double[sources.Count];
        for (var s = 0; s < sources.Count; s++)
        {
            var natural = longTotal[s] + shortTotal[s] > 0 ? longTotal[s] / (longTotal[s] + shortTotal[s]) : 0;
            // A source without long documents cannot move toward the target: it keeps its (all-short) nature.
            longShare[s] = target is { } f ? (longTotal[s] > 0 ? Math.Max(f, natural) : 0) : double.NaN;
        }

        double budget;
        if (options.TokenBudget is { } given)
        {
            budget = given;
        }
        else
        {
            budget = double.PositiveInfinity;
            foreach (var source in sources)
            {
                var s = (int)source;
                var w = mix[source];
                if (w <= 0)
                {
                    continue;
                }

                if (target is null)
                {
                    budget = Math.Min(budget, eligible[s] / w);
                }
                else
                {
                    if (longShare[s] > 0)
                    {
                        budget = Math.Min(budget, longTotal[s] / (longShare[s] * w));
                    }

                    if (longShare[s] < 1)
                    {
                        budget = Math.Min(budget, shortTotal[s] / ((1 - longShare[s]) * w));
                    }
                }

                if (budget <= 0)
                {
                    throw new ArgumentException(
                        $"Source {source} has weight {w:0.####} but no eligible documents in the input; give it weight 0 in Mix or add data.");
                }
            }
        }

        var longQuota = new double[sources.Count];
        var shortQuota = new double[sources.Count];
        for (var s = 0; s < sources.Count; s++)
        {
            var b = budget * mix[sources[s]];
            longQuota[s] = target is null ? b : b * longShare[s];
            shortQuota[s] = target is null ? 0 : b * (1 - longShare[s]);
        }

        var usedLong = new double[sources.Count];
        var usedShort = new double[sources.Count];
        var selected = new List<Selected>();
        var indexOf = new Dictionary<(int, int), int>(candidates.Length);
        for (var i = 0; i < candidates.Length; i++)
        {
            indexOf[(candidates[i].File, candidates[i].Document)] = i;
        }

        for (var epoch = 0; epoch < options.MaxEpochs && !AllMet(); epoch++)
        {
            foreach (var c in VisitOrder(candidates, options.Seed, epoch))
            {
                var s = (int)c.Source;
                double room;
                if (target is null)
                {
                    // One budget per source: long and short documents share it (usedLong counts both).
                    room = longQuota[s] - usedLong[s];
                    if (room <= Epsilon || (!c.IsLong && !KeepShort(c, options, epoch)))
                    {
                        continue;
                    }
                }
                else
                {
                    room = c.IsLong ? longQuota[s] - usedLong[s] : shortQuota[s] - usedShort[s];
                    if (room <= Epsilon)
                    {
                        continue;
                    }

                    if (c.IsLong && !options.IsLong(room) && options.Overflow == BudgetOverflow.Truncate)
                    {
                        // Less than one long document's worth of long quota is left: hand it to the short quota so
                        // the source still meets its budget exactly (its long share ends under target by < threshold).
                        shortQuota[s] += room;
                        longQuota[s] = usedLong[s];
                        continue;
                    }
                }

                var (tokens, used) = Take(c, room, options);
                if (tokens == 0)
                {
                    continue;
                }

                selected.Add(new Selected(indexOf[(c.File, c.Document)], epoch, tokens));
                if (target is not null && !c.IsLong)
                {
                    usedShort[s] += used;
                }
                else
                {
                    usedLong[s] += used;
                }
            }
        }

        return (selected, budget);

        bool AllMet()
        {
            for (var s = 0; s < sources.Count; s++)
            {
                if (longQuota[s] - usedLong[s] > Epsilon || shortQuota[s] - usedShort[s] > Epsilon)
                {
                    return false;
                }
            }

            return true;
        }
    }

    private static List<(int Candidate, PlannedPiece Piece)> Cut(List<Selected> selected, Candidate[] candidates, DataPrepOptions options, int overhead)
    {
        var pieces = new List<(int, PlannedPiece)>(selected.Count);
        var pieceTokens = options.Mode == SelectionMode.CutAt4K ? options.CutLength - overhead : int.MaxValue;
        if (pieceTokens < 1)
        {
            throw new ArgumentException($"CutLength {options.CutLength} leaves no room for text after BOS/separator.");
        }

        foreach (var sel in selected)
        {
            var c = candidates[sel.Candidate];
            var piece = 0;
            for (var start = 0; start < sel.Tokens; start += pieceTokens, piece++)
            {
                var count = Math.Min(pieceTokens, sel.Tokens - start);
                pieces.Add((sel.Candidate, new PlannedPiece(c.File, c.Document, sel.Epoch, piece, start, count, c.Source)));
            }
        }

        return pieces;
    }

    private static string PlanId(DataPrepOptions options, List<LengthIndex> inputs, string tokenizerId, int? bos, int? separator)
    {
        var canonical = JsonSerializer.Serialize(new
        {
            version = 1,
            options,
            tokenizerId,
            bos,
            separator,
            inputs = inputs.Select(i => new { key = i.FileKey, sha256 = i.Header.InputSha256, reader = i.Header.ReaderFingerprint, tokens = i.Header.Tokens }),
        }, LengthIndexStore.Json);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }

    private sealed class CandidateOrder : IComparer<Candidate>
    {
        public static readonly CandidateOrder Instance = new();

        public int Compare(Candidate x, Candidate y) => x.File != y.File ? x.File.CompareTo(y.File) : x.Document.CompareTo(y.Document);
    }
}
