using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using Parquet;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Selection;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Packing;

/// <summary>What a written shard is: enough for the manifest, written beside the shard as its receipt.</summary>
public sealed record ShardReceipt(int Shard, string File, string Sha256, long Bytes, long Rows, long Tokens, long FirstSequence, string PlanId);

/// <summary>
/// Writes one output shard of a plan from the token caches alone: the shard's first sequence starts at a known
/// stream position, so no other shard has to be written first.
/// </summary>
public static class PackedShardWriter
{
    public static string ReceiptPath(string outFolder, int shard) => Path.Combine(outFolder, "receipts", $"shard-{shard:D5}.json");

    public static async Task<ShardReceipt> WriteShardAsync(PackingPlan plan, int shard, string indexFolder, string outFolder, CancellationToken cancellationToken)
    {
        var (first, count) = plan.ShardSequences(shard);
        var context = plan.Options.ContextLength;
        var rowsPerGroup = Math.Max(1, plan.Options.RowGroupBytes / (4 * context));
        Directory.CreateDirectory(outFolder);
        var path = Path.Combine(outFolder, PackingPlan.ShardFileName(shard));
        var temp = path + ".tmp-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8];
        using var caches = new TokenCaches(plan, indexFolder);
        try
        {
            await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                var parquetOptions = new ParquetOptions
                {
                    CompressionMethod = plan.Options.Compression == ShardCompression.Zstd ? CompressionMethod.Zstd : CompressionMethod.Snappy,

                    // Parquet.Net's default ("Optimal") zstd level runs at well under 1 MB/s; the fastest level
                    // keeps shard writing far quicker than tokenization and still halves int32 token blobs.
                    CompressionLevel = System.IO.Compression.CompressionLevel.Fastest,
                };
                await using var writer = await ParquetWriter.CreateAsync(PackedShardFormat.Schema, stream, parquetOptions, append: false, cancellationToken);
                writer.CustomMetadata = new Dictionary<string, string>
                {
                    [PackedShardFormat.Keys.Format] = PackedShardFormat.FormatName,
                    [PackedShardFormat.Keys.PlanId] = plan.PlanId,
                    [PackedShardFormat.Keys.Shard] = Invariant(shard),
                    [PackedShardFormat.Keys.ShardCount] = Invariant(plan.ShardCount),
                    [PackedShardFormat.Keys.FirstSequence] = Invariant(first),
                    [PackedShardFormat.Keys.Sequences] = Invariant(count),
                    [PackedShardFormat.Keys.ContextLength] = Invariant(context),
                    [PackedShardFormat.Keys.Tokenizer] = plan.TokenizerId,
                    [PackedShardFormat.Keys.BosId] = plan.BosId?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
                    [PackedShardFormat.Keys.SeparatorId] = plan.SeparatorId?.ToString(CultureInfo.InvariantCulture) ?? string.Empty,
                    [PackedShardFormat.Keys.TokenEncoding] = "int32-le",
                    [PackedShardFormat.Keys.Sources] = string.Join(',', SlimPajama.Sources.Select(s => s.SetName())),
                };

                if (!BitConverter.IsLittleEndian)
                {
                    throw new PlatformNotSupportedException("Packed shards are little-endian.");
                }

                // One set of row buffers for the whole shard: sequences are packed straight into them (no per-row
                // copy), so a writer holds one row group of tokens however large the shard or the corpus is.
                var packer = new SequencePacker(plan, caches, first * context);
                var buffers = new byte[(int)Math.Min(rowsPerGroup, count)][];
                for (var r = 0; r < buffers.Length; r++)
                {
                    buffers[r] = new byte[4 * context];
                }

                var spanSources = new List<int>();
                var spanStarts = new List<int>();
                var spanEnds = new List<int>();
                var repetition = new List<int>();
                for (long done = 0; done < count;)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var rows = (int)Math.Min(rowsPerGroup, count - done);
                    var tokenBlobs = rows == buffers.Length ? buffers : buffers[..rows];
                    spanSources.Clear();
                    spanStarts.Clear();
                    spanEnds.Clear();
                    repetition.Clear();
                    for (var r = 0; r < rows; r++)
                    {
                        var spans = packer.Next(MemoryMarshal.Cast<byte, int>(tokenBlobs[r].AsSpan()));
                        for (var i = 0; i < spans.Count; i++)
                        {
                            spanSources.Add((int)spans[i].Source);
                            spanStarts.Add(spans[i].Start);
                            spanEnds.Add(spans[i].End);
                            repetition.Add(i == 0 ? 0 : 1);
                        }
                    }

                    using (var group = writer.CreateRowGroup())
                    {
                        var levels = repetition.ToArray();
                        await group.WriteAsync(PackedShardFormat.Tokens, tokenBlobs, null);
                        await group.WriteAsync<int>(PackedShardFormat.SpanSource, spanSources.ToArray(), levels, null, cancellationToken);
                        await group.WriteAsync<int>(PackedShardFormat.SpanStart, spanStarts.ToArray(), levels, null, cancellationToken);
                        await group.WriteAsync<int>(PackedShardFormat.SpanEnd, spanEnds.ToArray(), levels, null, cancellationToken);
                        group.CompleteValidate();
                    }

                    done += rows;
                }
            }

            var (sha, bytes) = Hash(temp);
            File.Move(temp, path, overwrite: true);
            var receipt = new ShardReceipt(shard, PackingPlan.ShardFileName(shard), sha, bytes, count, count * context, first, plan.PlanId);
            WriteJsonAtomically(ReceiptPath(outFolder, shard), receipt);
            return receipt;
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    internal static (string Sha256, long Bytes) Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return (Convert.ToHexStringLower(SHA256.HashData(stream)), stream.Length);
    }

    internal static void WriteJsonAtomically<T>(string path, T value)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8];
        File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(value, ReportJson.Options));
        File.Move(temp, path, overwrite: true);
    }

    private static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Walks the packed stream from a position, filling one sequence at a time.</summary>
    private sealed class SequencePacker(PackingPlan plan, TokenCaches caches, long position)
    {
        private int piece = plan.PieceAt(position);
        private long offset = position - plan.PieceStarts[plan.PieceAt(position)];

        private readonly List<(SlimPajamaSource Source, int Start, int End)> spans = [];

        /// <summary>Fills <paramref name="sequence"/>; the spans returned are valid until the next call.</summary>
        public List<(SlimPajamaSource Source, int Start, int End)> Next(Span<int> sequence)
        {
            spans.Clear();
            var filled = 0;
            while (filled < sequence.Length)
            {
                var p = plan.Pieces[piece];
                var pieceLength = plan.PieceStarts[piece + 1] - plan.PieceStarts[piece];
                var take = (int)Math.Min(pieceLength - offset, sequence.Length - filled);
                Copy(p, (int)offset, sequence.Slice(filled, take));
                spans.Add((p.Source, filled, filled + take));
                filled += take;
                offset += take;
                if (offset == pieceLength)
                {
                    piece++;
                    offset = 0;
                }
            }

            return spans;
        }

        /// <summary>Writes positions [from, from + dest.Length) of a piece's stream: BOS, its tokens, separator.</summary>
        private void Copy(PlannedPiece p, int from, Span<int> dest)
        {
            var i = 0;
            var pos = from;
            if (plan.BosId is { } bos && pos == 0 && i < dest.Length)
            {
                dest[i++] = bos;
                pos++;
            }

            var contentStart = plan.BosId is null ? 0 : 1;
            var contentIndex = pos - contentStart;
            var contentTake = Math.Min(p.TokenCount - contentIndex, dest.Length - i);
            if (contentTake > 0)
            {
                caches.Read(p, p.TokenStart + contentIndex, dest.Slice(i, contentTake));
                i += contentTake;
            }

            if (i < dest.Length)
            {
                dest[i++] = plan.SeparatorId ?? throw new InvalidOperationException("Piece stream overrun.");
            }
        }
    }

    /// <summary>Random access into the token caches of the measure pass.</summary>
    private sealed class TokenCaches(PackingPlan plan, string indexFolder) : IDisposable
    {
        private readonly Dictionary<int, SafeFileHandle> handles = [];
        private byte[] buffer = new byte[1 << 16];

        public void Read(PlannedPiece p, int firstToken, Span<int> dest)
        {
            var input = plan.Inputs[p.File];
            if (!handles.TryGetValue(p.File, out var handle))
            {
                handle = File.OpenHandle(LengthIndexStore.TokenCachePath(indexFolder, input.FileKey), FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
                handles[p.File] = handle;
            }

            var width = input.Header.TokenBytes;
            var bytes = dest.Length * width;
            if (buffer.Length < bytes)
            {
                buffer = new byte[bytes];
            }

            var fileOffset = (input.TokenOffsets[p.Document] + firstToken) * width;
            var span = buffer.AsSpan(0, bytes);
            var read = 0;
            while (read < bytes)
            {
                var n = RandomAccess.Read(handle, span[read..], fileOffset + read);
                if (n == 0)
                {
                    throw new InvalidDataException($"Token cache of {input.FileKey} ends early at byte {fileOffset + read}.");
                }

                read += n;
            }

            if (width == 2)
            {
                for (var k = 0; k < dest.Length; k++)
                {
                    dest[k] = BinaryPrimitives.ReadUInt16LittleEndian(span[(2 * k)..]);
                }
            }
            else
            {
                for (var k = 0; k < dest.Length; k++)
                {
                    dest[k] = BinaryPrimitives.ReadInt32LittleEndian(span[(4 * k)..]);
                }
            }
        }

        public void Dispose()
        {
            foreach (var h in handles.Values)
            {
                h.Dispose();
            }
        }
    }
}
