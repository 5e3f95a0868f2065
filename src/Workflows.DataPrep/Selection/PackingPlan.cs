using Workflows.DataPrep.Corpus;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Selection;

/// <summary>
/// One contiguous token range of one document, placed in the packed stream. A document appears as one piece,
/// or several (CutAt4K), or again in a later epoch (MaxEpochs &gt; 1).
/// </summary>
/// <param name="File">Index into <see cref="PackingPlan.Inputs"/>.</param>
/// <param name="Document">Index into that input's length index.</param>
/// <param name="TokenStart">First token of the document taken (0 unless cut).</param>
/// <param name="TokenCount">Tokens taken (less than the document when cut or truncated at a budget).</param>
public readonly record struct PlannedPiece(int File, int Document, int Epoch, int Piece, int TokenStart, int TokenCount, SlimPajamaSource Source);

/// <summary>
/// The whole decision of a run, computed from the length indexes and options alone: which pieces, in what
/// order, and therefore where every sequence and every output shard begins. Any shard task recomputes the same
/// plan and writes its own shards without talking to the others.
/// </summary>
public sealed class PackingPlan
{
    internal PackingPlan(
        DataPrepOptions options,
        IReadOnlyList<LengthIndex> inputs,
        PlannedPiece[] pieces,
        int? bosId,
        int? separatorId,
        string tokenizerId,
        double budget,
        IReadOnlyDictionary<SlimPajamaSource, double>? requestedMix,
        string planId)
    {
        Options = options;
        Inputs = inputs;
        Pieces = pieces;
        BosId = bosId;
        SeparatorId = separatorId;
        TokenizerId = tokenizerId;
        Budget = budget;
        RequestedMix = requestedMix;
        PlanId = planId;
        PieceStarts = new long[pieces.Length + 1];
        for (var i = 0; i < pieces.Length; i++)
        {
            PieceStarts[i + 1] = PieceStarts[i] + PieceOverhead + pieces[i].TokenCount;
        }

        StreamTokens = PieceStarts[^1];
        SequenceCount = StreamTokens / options.ContextLength;
        ShardCount = (int)((SequenceCount + options.SequencesPerShard - 1) / options.SequencesPerShard);
    }

    public DataPrepOptions Options { get; }

    /// <summary>Length indexes, sorted by file key.</summary>
    public IReadOnlyList<LengthIndex> Inputs { get; }

    /// <summary>Pieces in packing order.</summary>
    public IReadOnlyList<PlannedPiece> Pieces { get; }

    /// <summary>Offset of each piece (its BOS) in the packed token stream; the last entry is the stream length.</summary>
    public long[] PieceStarts { get; }

    public int? BosId { get; }

    public int? SeparatorId { get; }

    public string TokenizerId { get; }

    /// <summary>Budget the selection worked to, in the length measure's units (given, or the largest the rule can meet).</summary>
    public double Budget { get; }

    /// <summary>Per-source weights for PerSource/Upsample; null for the other modes.</summary>
    public IReadOnlyDictionary<SlimPajamaSource, double>? RequestedMix { get; }

    /// <summary>SHA-256 of the canonical options, tokenizer and input identities.</summary>
    public string PlanId { get; }

    /// <summary>BOS and separator tokens that surround each piece.</summary>
    public int PieceOverhead => (BosId is null ? 0 : 1) + (SeparatorId is null ? 0 : 1);

    public long StreamTokens { get; }

    public long SequenceCount { get; }

    /// <summary>Tokens at the end of the stream that do not fill a sequence and are dropped (as the released code drops them).</summary>
    public long DroppedTailTokens => StreamTokens - (SequenceCount * Options.ContextLength);

    public int ShardCount { get; }

    /// <summary>The sequences output shard <paramref name="shard"/> holds: [First, First + Count).</summary>
    public (long First, long Count) ShardSequences(int shard)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(shard);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(shard, ShardCount);
        var first = (long)shard * Options.SequencesPerShard;
        return (first, Math.Min(Options.SequencesPerShard, SequenceCount - first));
    }

    /// <summary>The piece that holds stream position <paramref name="position"/>.</summary>
    public int PieceAt(long position)
    {
        var i = Array.BinarySearch(PieceStarts, position);
        return i >= 0 ? i : ~i - 1;
    }

    public static string ShardFileName(int shard) => $"shard-{shard:D5}.parquet";
}
