namespace Workflows.Training.Data;

/// <summary>
/// An endless, ordered stream of packed training sequences with a position that can be saved and restored.
/// <para>
/// Convention: every sequence has <see cref="Context"/> + 1 token ids, i.e. the paper's packed record
/// (<c>input_ids</c> of the training context followed by its single <c>labels</c> token, the next token of the
/// stream). The model reads <c>seq[0..Context)</c> and is trained to predict <c>seq[1..Context]</c>, so every
/// position of the context gets a next-token target and no token is wasted at chunk boundaries.
/// </para>
/// <para>
/// <see cref="Position"/> counts the sequences handed out so far. A checkpoint stores it, and resuming calls
/// <see cref="Seek"/> with it, so that the resumed run sees exactly the sequences the interrupted run would have
/// seen next. Sources wrap around at their end (a new epoch in the same order).
/// </para>
/// </summary>
public interface IPackedSequenceSource
{
    /// <summary>The training context T; sequences are T + 1 tokens long.</summary>
    int Context { get; }

    /// <summary>Sequences handed out so far (including wrapped epochs).</summary>
    long Position { get; }

    /// <summary>Continue as if <paramref name="position"/> sequences had been read.</summary>
    void Seek(long position);

    /// <summary>The next sequence (Context + 1 token ids).</summary>
    int[] Next();
}

/// <summary>A source over sequences held in memory (tests, smoke runs, small evaluation sets).</summary>
public sealed class InMemoryPackedSequenceSource : IPackedSequenceSource
{
    readonly IReadOnlyList<int[]> sequences;

    public InMemoryPackedSequenceSource(IReadOnlyList<int[]> sequences)
    {
        if (sequences.Count == 0) throw new ArgumentException("no sequences", nameof(sequences));
        Context = sequences[0].Length - 1;
        if (Context < 1 || sequences.Any(s => s.Length != Context + 1))
            throw new ArgumentException("all sequences must have the same length ≥ 2 (context + 1)", nameof(sequences));
        this.sequences = sequences;
    }

    public int Context { get; }
    public long Position { get; private set; }
    public int Count => sequences.Count;

    public void Seek(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        Position = position;
    }

    public int[] Next() => sequences[(int)(Position++ % sequences.Count)];
}

public static class SequencePacking
{
    /// <summary>
    /// Concatenates token streams (documents, already with their BOS if any) and cuts them into non-overlapping
    /// sequences of <paramref name="context"/> + 1 tokens, dropping the incomplete tail. Documents cross
    /// sequence boundaries, as in the paper ("pack all data … regardless of the document boundary"). A simple
    /// packer for tests and smoke runs; real runs read the data-prep shards.
    /// </summary>
    public static List<int[]> Pack(IEnumerable<IReadOnlyList<int>> documents, int context)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(context, 1);
        var packed = new List<int[]>();
        var buffer = new List<int>(context + 1);
        foreach (var document in documents)
            foreach (int token in document)
            {
                buffer.Add(token);
                if (buffer.Count == context + 1) { packed.Add(buffer.ToArray()); buffer.Clear(); }
            }
        return packed;
    }
}
