using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Parquet;

namespace Workflows.DataPrep.Packing;

/// <summary>Shard-level facts from a packed shard's key-value metadata.</summary>
public sealed record PackedShardInfo(string PlanId, int Shard, int ShardCount, long FirstSequence, long Sequences, int ContextLength, string Tokenizer, int? BosId, int? SeparatorId);

/// <summary>
/// Streams the sequences of packed shards for the trainer and the evaluator: one row group in memory at a time.
/// </summary>
public sealed class PackedShardReader : IAsyncDisposable
{
    private readonly ParquetReader reader;
    private readonly FileStream stream;

    private PackedShardReader(FileStream stream, ParquetReader reader, PackedShardInfo info)
    {
        this.stream = stream;
        this.reader = reader;
        Info = info;
    }

    public PackedShardInfo Info { get; }

    private string[] sourceNames = [];

    public static async Task<PackedShardReader> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        try
        {
            var reader = await ParquetReader.CreateAsync(stream, null, leaveStreamOpen: true, cancellationToken);
            var m = reader.CustomMetadata;
            if (m.GetValueOrDefault(PackedShardFormat.Keys.Format) != PackedShardFormat.FormatName)
            {
                throw new InvalidDataException($"{path}: not a packed-sequence shard (no {PackedShardFormat.Keys.Format}={PackedShardFormat.FormatName})");
            }

            var info = new PackedShardInfo(
                m[PackedShardFormat.Keys.PlanId],
                int.Parse(m[PackedShardFormat.Keys.Shard], CultureInfo.InvariantCulture),
                int.Parse(m[PackedShardFormat.Keys.ShardCount], CultureInfo.InvariantCulture),
                long.Parse(m[PackedShardFormat.Keys.FirstSequence], CultureInfo.InvariantCulture),
                long.Parse(m[PackedShardFormat.Keys.Sequences], CultureInfo.InvariantCulture),
                int.Parse(m[PackedShardFormat.Keys.ContextLength], CultureInfo.InvariantCulture),
                m[PackedShardFormat.Keys.Tokenizer],
                ParseOptional(m.GetValueOrDefault(PackedShardFormat.Keys.BosId)),
                ParseOptional(m.GetValueOrDefault(PackedShardFormat.Keys.SeparatorId)));
            return new PackedShardReader(stream, reader, info) { sourceNames = m[PackedShardFormat.Keys.Sources].Split(',') };
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    /// <summary>Every sequence with its source spans, in order.</summary>
    public async IAsyncEnumerable<PackedSequence> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var index = Info.FirstSequence;
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var rows = (int)group.RowCount;
            var blobs = new byte[]?[rows];
            await group.ReadAsync(PackedShardFormat.Tokens, blobs.AsMemory(), null, cancellationToken);
            var spanCount = (int)group.GetMetadata(PackedShardFormat.SpanStart)!.MetaData!.NumValues;
            var sources = new int[spanCount];
            var starts = new int[spanCount];
            var ends = new int[spanCount];
            var levels = new int[spanCount];
            var definitions = new int[spanCount];
            await group.ReadRawAsync<int>(PackedShardFormat.SpanSource, sources.AsMemory(), definitions.AsMemory(), levels.AsMemory(), cancellationToken);
            await group.ReadRawAsync<int>(PackedShardFormat.SpanStart, starts.AsMemory(), definitions.AsMemory(), levels.AsMemory(), cancellationToken);
            await group.ReadRawAsync<int>(PackedShardFormat.SpanEnd, ends.AsMemory(), definitions.AsMemory(), levels.AsMemory(), cancellationToken);
            var s = 0;
            for (var r = 0; r < rows; r++)
            {
                var spans = new List<SourceSpan>();
                do
                {
                    spans.Add(new SourceSpan(sourceNames[sources[s]], starts[s], ends[s]));
                    s++;
                }
                while (s < spanCount && levels[s] != 0);

                yield return new PackedSequence(index++, Decode(blobs[r]), spans);
            }
        }
    }

    /// <summary>Token ids only (skips the span columns): what a trainer needs.</summary>
    public async IAsyncEnumerable<int[]> ReadTokensAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var blobs = new byte[]?[(int)group.RowCount];
            await group.ReadAsync(PackedShardFormat.Tokens, blobs.AsMemory(), null, cancellationToken);
            foreach (var blob in blobs)
            {
                yield return Decode(blob);
            }
        }
    }

    private int[] Decode(byte[]? blob)
    {
        if (blob is null || blob.Length != 4 * Info.ContextLength)
        {
            throw new InvalidDataException($"A row holds {blob?.Length ?? 0} bytes, not {4 * Info.ContextLength} ({Info.ContextLength} int32 tokens).");
        }

        return MemoryMarshal.Cast<byte, int>(blob).ToArray();
    }

    private static int? ParseOptional(string? value) =>
        string.IsNullOrEmpty(value) ? null : int.Parse(value, CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await reader.DisposeAsync();
        await stream.DisposeAsync();
    }
}
