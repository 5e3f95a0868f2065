using System.Security.Cryptography;
using Workflows.DataPrep.Packing;
using Workflows.DataPrep.Pipeline;

namespace Workflows.Training.Data;

/// <summary>
/// Training sequences from a published data-prep output (manifest + Parquet shards). Rows hold exactly the context
/// (T tokens); a training sequence is a row plus the first token of the row after it (the paper's one
/// <c>labels</c> token), so R rows give R − 1 sequences, read in manifest order and wrapping around. Every shard's
/// SHA-256 is checked against the manifest before its first row is used: a corrupted shard stops training.
/// </summary>
public sealed class PackedShardSequenceSource : IPackedSequenceSource, IDisposable
{
    private readonly string folder;
    private readonly IReadOnlyList<ManifestShard> shards;
    private readonly long rows;
    private readonly HashSet<int> verified = [];
    private PackedShardReader? reader;
    private IAsyncEnumerator<int[]>? cursor;
    private long cursorRow = -1;
    private (long Row, int[] Tokens)? lookahead;

    public PackedShardSequenceSource(string dataFolder)
    {
        folder = dataFolder;
        var manifest = DataPrepPipeline.ReadManifest(dataFolder)
            ?? throw new FileNotFoundException($"{dataFolder}: no {DataPrepManifest.FileName} (data prep did not finish, or this is not its output folder)");
        shards = [.. manifest.Shards.OrderBy(s => s.FirstSequence)];
        rows = manifest.Sequences;
        Context = manifest.ContextLength;
        Tokenizer = manifest.Tokenizer;
        if (rows < 2)
        {
            throw new InvalidDataException($"{dataFolder}: {rows} packed row(s); training needs at least 2 (a row and the next row's first token)");
        }
    }

    public int Context { get; }

    public string Tokenizer { get; }

    /// <summary>Distinct sequences before the stream wraps around.</summary>
    public long SequencesPerEpoch => rows - 1;

    public long Position { get; private set; }

    public void Seek(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        Position = position;
    }

    public int[] Next()
    {
        var row = Position % SequencesPerEpoch;
        var current = lookahead is { } la && la.Row == row ? la.Tokens : ReadRow(row);
        var next = ReadRow(row + 1);
        lookahead = (row + 1, next);
        var sequence = new int[Context + 1];
        current.AsSpan().CopyTo(sequence);
        sequence[Context] = next[0];
        Position++;
        return sequence;
    }

    private int[] ReadRow(long row)
    {
        if (cursor is null || cursorRow != row)
        {
            OpenAt(row);
        }

        if (!cursor!.MoveNextAsync().AsTask().GetAwaiter().GetResult())
        {
            throw new InvalidDataException($"{folder}: shard ended before row {row} (the manifest says {rows} rows)");
        }

        cursorRow = row + 1;
        var shard = ShardOf(row);
        if (row + 1 >= shard.FirstSequence + shard.Rows)
        {
            // The next row is in the next shard: reopen lazily there.
            cursorRow = -1;
        }

        return cursor.Current;
    }

    private ManifestShard ShardOf(long row) =>
        shards.LastOrDefault(s => s.FirstSequence <= row) is { } s && row < s.FirstSequence + s.Rows
            ? s
            : throw new InvalidDataException($"{folder}: no shard holds row {row}");

    private void OpenAt(long row)
    {
        CloseReader();
        var shard = ShardOf(row);
        var index = shards.ToList().IndexOf(shard);
        var path = Path.Combine(folder, shard.File);
        if (verified.Add(index))
        {
            using var stream = File.OpenRead(path);
            var actual = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (!string.Equals(actual, shard.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                verified.Remove(index);
                throw new InvalidDataException($"{path}: SHA-256 {actual} does not match the manifest's {shard.Sha256}: the shard is corrupted; prepare the data again");
            }
        }

        reader = PackedShardReader.OpenAsync(path).GetAwaiter().GetResult();
        cursor = reader.ReadTokensAsync().GetAsyncEnumerator();
        for (var skip = shard.FirstSequence; skip < row; skip++)
        {
            cursor.MoveNextAsync().AsTask().GetAwaiter().GetResult();
        }

        cursorRow = row;
    }

    private void CloseReader()
    {
        cursor?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        reader?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        cursor = null;
        reader = null;
        cursorRow = -1;
    }

    public void Dispose() => CloseReader();
}
