using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Parquet;
using Parquet.Schema;
using ZstdSharp;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Corpus;

/// <summary>
/// Streams the documents of one input file in file order. Memory is bounded by the longest line (JSONL) or
/// the largest row group (Parquet), never by the file; and the longest line, the decompressed size and the compression
/// ratio are bounded by <see cref="CorpusReaderOptions.Limits"/>. Files are opened through the path policy
/// (<see cref="PathPolicy.Current"/>): a FIFO, a device or a link out of the allowed roots is refused before it is opened.
/// </summary>
public static class CorpusReader
{
    public static IEnumerable<CorpusDocument> Read(InputFile file, CorpusReaderOptions options, BadRecordLog log)
    {
        var format = CorpusFormats.Detect(file.Path)
            ?? throw new ArgumentException($"{file.Path}: unknown input format (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)");
        return format == CorpusFormat.Parquet ? ReadParquet(file, options, log) : ReadJsonl(file, format, options, log);
    }

    private static IEnumerable<CorpusDocument> ReadJsonl(InputFile file, CorpusFormat format, CorpusReaderOptions options, BadRecordLog log)
    {
        using var raw = PathPolicy.Current.OpenRead(file.Path, 1 << 16);
        using var decompressed = format switch
        {
            CorpusFormat.JsonlZstd => new DecompressionStream(raw, leaveOpen: true),
            CorpusFormat.JsonlGzip => new GzipVerifyingStream(raw),
            _ => (Stream)raw,
        };
        var limits = options.Limits;
        var lines = new LineSplitter(decompressed, limits, format == CorpusFormat.Jsonl ? null : () => raw.Position);
        var textPath = options.TextField.Split('.');
        var sourcePath = options.SourceField.Split('.');
        long lineNumber = 0;
        long documents = 0;
        char[] scratch = [];
        while (true)
        {
            ReadOnlyMemory<byte> line;
            long offset;
            try
            {
                if (!lines.TryReadLine(out line, out offset))
                {
                    break;
                }
            }
            catch (ReadLimitException e)
            {
                var record = new BadRecord(file.Key, lineNumber + 1, e.Offset, BadRecordReason.TooLarge, e.Message);
                throw new CorpusFormatException(record, e.Describe(file.Key, lineNumber + 1));
            }
            catch (Exception e) when (e is ZstdException or InvalidDataException or EndOfStreamException or GzipTrailerException)
            {
                var truncated = e is EndOfStreamException || (e is GzipTrailerException g && g.LooksTruncated);
                log.Report(new BadRecord(file.Key, lineNumber + 1, raw.Position,
                    truncated ? BadRecordReason.TruncatedCompression : BadRecordReason.CorruptCompression,
                    $"{format} stream is {(truncated ? "truncated" : "corrupt")} ({e.Message}); {lineNumber} lines were read before it"), e);
                break; // a broken compressed stream cannot be resynchronised: the rest of the file is lost
            }

            lineNumber++;
            var span = line.Span;
            if (IsBlank(span))
            {
                continue;
            }

            if (!Utf8.IsValid(span))
            {
                if (scratch.Length < span.Length)
                {
                    scratch = new char[span.Length];
                }

                Utf8.ToUtf16(span, scratch, out var validBytes, out _, replaceInvalidSequences: false);
                log.Report(new BadRecord(file.Key, lineNumber, offset + validBytes, BadRecordReason.InvalidUtf8,
                    $"invalid UTF-8 byte 0x{span[validBytes]:X2} at column {validBytes + 1} of the line"));
                continue;
            }

            var doc = ParseJsonLine(file.Key, line, lineNumber, offset, textPath, sourcePath, options, log);
            if (doc is not null)
            {
                documents++;
                yield return doc;
            }
        }

        if (documents == 0 && log.Skipped == 0)
        {
            log.Report(new BadRecord(file.Key, 0, -1, BadRecordReason.EmptyInput, $"no documents in {lineNumber} lines"));
        }
    }

    private static CorpusDocument? ParseJsonLine(string fileKey, ReadOnlyMemory<byte> line, long lineNumber, long offset,
        string[] textPath, string[] sourcePath, CorpusReaderOptions options, BadRecordLog log)
    {
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            log.Report(new BadRecord(fileKey, lineNumber, offset + (e.BytePositionInLine ?? 0), BadRecordReason.NotJson,
                $"not a JSON object: {e.Message}"), e);
            return null;
        }

        using (json)
        {
            if (json.RootElement.ValueKind != JsonValueKind.Object)
            {
                log.Report(new BadRecord(fileKey, lineNumber, offset, BadRecordReason.NotJson, $"a JSON {json.RootElement.ValueKind}, not an object"));
                return null;
            }

            var text = Find(json.RootElement, textPath);
            if (text is not { ValueKind: JsonValueKind.String })
            {
                log.Report(new BadRecord(fileKey, lineNumber, offset, BadRecordReason.MissingText,
                    text is null ? $"no \"{options.TextField}\" field" : $"\"{options.TextField}\" is a {text.Value.ValueKind}, not a string"));
                return null;
            }

            var sourceName = Find(json.RootElement, sourcePath);
            if (sourceName is not { ValueKind: JsonValueKind.String })
            {
                log.Report(new BadRecord(fileKey, lineNumber, offset, BadRecordReason.MissingSource,
                    sourceName is null ? $"no \"{options.SourceField}\" field" : $"\"{options.SourceField}\" is a {sourceName.Value.ValueKind}, not a string"));
                return null;
            }

            var name = sourceName.Value.GetString();
            if (!SlimPajama.TryParse(name, out var source))
            {
                log.Report(new BadRecord(fileKey, lineNumber, offset, BadRecordReason.UnknownSource,
                    $"unknown source \"{name}\" (expected one of {string.Join(", ", SlimPajama.Sources.Select(s => s.SetName()))})"));
                return null;
            }

            string value;
            try
            {
                value = text.Value.GetString()!;
            }
            catch (InvalidOperationException e)
            {
                log.Report(new BadRecord(fileKey, lineNumber, offset, BadRecordReason.InvalidUtf8, $"text is not valid Unicode: {e.Message}"), e);
                return null;
            }

            return new CorpusDocument(value, source, fileKey, lineNumber, offset);
        }
    }

    private static JsonElement? Find(JsonElement root, string[] path)
    {
        var current = root;
        foreach (var part in path)
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(part, out var next))
            {
                return null;
            }

            current = next;
        }

        return current.ValueKind == JsonValueKind.Null ? null : current;
    }

    private static bool IsBlank(ReadOnlySpan<byte> line)
    {
        foreach (var b in line)
        {
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r'))
            {
                return false;
            }
        }

        return true;
    }

    private static IEnumerable<CorpusDocument> ReadParquet(InputFile file, CorpusReaderOptions options, BadRecordLog log)
    {
        PathPolicy.Current.RequireFile(file.Path); // before the try: a refused path is not a bad record to skip
        ParquetReader reader;
        try
        {
            // Sync over async: the measure pass runs on worker threads without a synchronisation context.
            reader = ParquetReader.CreateAsync(file.Path).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or InvalidOperationException or ArgumentException)
        {
            log.Report(new BadRecord(file.Key, 0, -1, BadRecordReason.UnreadableParquet, e.Message), e);
            yield break;
        }

        long row = 0;
        long documents = 0;
        try
        {
            var textField = FindField(reader.Schema, options.ParquetTextColumn);
            var sourceField = FindField(reader.Schema, options.ParquetSourceColumn);
            if (textField is null || sourceField is null)
            {
                var missing = textField is null ? options.ParquetTextColumn : options.ParquetSourceColumn;
                var reason = textField is null ? BadRecordReason.MissingText : BadRecordReason.MissingSource;
                var columns = string.Join(", ", reader.Schema.GetDataFields().Select(f => f.Path.ToString()));
                log.Report(new BadRecord(file.Key, 0, -1, reason, $"no column \"{missing}\" (columns: {columns})"));
                yield break;
            }

            for (var g = 0; g < reader.RowGroupCount; g++)
            {
                string?[] texts;
                string?[] sources;
                using (var group = reader.OpenRowGroupReader(g))
                {
                    texts = new string?[group.RowCount];
                    sources = new string?[group.RowCount];
                    group.ReadAsync(textField, texts.AsMemory(), null, default).AsTask().GetAwaiter().GetResult();
                    group.ReadAsync(sourceField, sources.AsMemory(), null, default).AsTask().GetAwaiter().GetResult();
                }

                for (var i = 0; i < texts.Length; i++)
                {
                    row++;
                    if (texts[i] is not { } text)
                    {
                        log.Report(new BadRecord(file.Key, row, -1, BadRecordReason.MissingText, $"\"{options.ParquetTextColumn}\" is null"));
                        continue;
                    }

                    if (text.Length > options.Limits.MaxDocumentBytes / 4 && System.Text.Encoding.UTF8.GetByteCount(text) > options.Limits.MaxDocumentBytes)
                    {
                        var record = new BadRecord(file.Key, row, -1, BadRecordReason.TooLarge, "document too large");
                        throw new CorpusFormatException(record,
                            $"document at {Show(file.Key)}:{row} exceeds {ReadLimits.Size(options.Limits.MaxDocumentBytes)} (the limit per document; {ReadLimits.DocumentVariable} raises it)");
                    }

                    if (sources[i] is not { } name)
                    {
                        log.Report(new BadRecord(file.Key, row, -1, BadRecordReason.MissingSource, $"\"{options.ParquetSourceColumn}\" is null"));
                        continue;
                    }

                    if (!SlimPajama.TryParse(name, out var source))
                    {
                        log.Report(new BadRecord(file.Key, row, -1, BadRecordReason.UnknownSource, $"unknown source \"{name}\""));
                        continue;
                    }

                    documents++;
                    yield return new CorpusDocument(text, source, file.Key, row, -1);
                }
            }

        }
        finally
        {
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        if (documents == 0 && log.Skipped == 0)
        {
            log.Report(new BadRecord(file.Key, 0, -1, BadRecordReason.EmptyInput, $"no documents in {row} rows"));
        }
    }

    private static DataField? FindField(ParquetSchema schema, string name) =>
        schema.GetDataFields().FirstOrDefault(f => f.Path.ToString() == name || string.Join('.', f.Path.ToList()) == name)
        ?? schema.GetDataFields().FirstOrDefault(f => f.Name == name);

    private static string Show(string text) => Workflows.Experiments.Validation.Untrusted.Escape(text, 240);

    /// <summary>A <see cref="ReadLimits"/> limit was hit while splitting lines.</summary>
    private sealed class ReadLimitException(string what, long offset, string limit, string variable) : Exception(what)
    {
        public long Offset { get; } = offset;

        public string Describe(string file, long line) =>
            $"{string.Format(System.Globalization.CultureInfo.InvariantCulture, Message, $"{Show(file)}:{line}")} ({limit}; {variable} raises it)";
    }

    /// <summary>
    /// Splits a byte stream into lines (LF, optional CR stripped) and tracks each line's byte offset. Refuses a line
    /// longer than the document limit before it buffers more of it, a stream that decompresses past the size limit, and
    /// one whose compression ratio says it is a bomb (<paramref name="compressedPosition"/>: bytes of the file read so far).
    /// </summary>
    private sealed class LineSplitter(Stream stream, ReadLimits limits, Func<long>? compressedPosition)
    {
        private byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        private int start;
        private int end;
        private int scanned;
        private long bufferOffset;
        private bool eof;

        public bool TryReadLine(out ReadOnlyMemory<byte> line, out long offset)
        {
            while (true)
            {
                var newline = buffer.AsSpan(scanned, end - scanned).IndexOf((byte)'\n');
                if (newline >= 0)
                {
                    var stop = scanned + newline;
                    CheckLine(stop - start);
                    line = Trim(start, stop);
                    offset = bufferOffset + start;
                    start = scanned = stop + 1;
                    return true;
                }

                scanned = end;
                CheckLine(end - start);
                if (eof)
                {
                    if (start < end)
                    {
                        line = Trim(start, end);
                        offset = bufferOffset + start;
                        start = scanned = end;
                        return true;
                    }

                    line = default;
                    offset = bufferOffset + end;
                    return false;
                }

                Fill();
            }
        }

        private ReadOnlyMemory<byte> Trim(int from, int to) =>
            buffer.AsMemory(from, to > from && buffer[to - 1] == (byte)'\r' ? to - from - 1 : to - from);

        private void Fill()
        {
            if (start > 0)
            {
                // Move the unfinished line to the front; the buffer only grows for lines longer than it.
                Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                bufferOffset += start;
                end -= start;
                scanned -= start;
                start = 0;
            }

            if (end == buffer.Length)
            {
                var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(2L * buffer.Length, Array.MaxLength));
                Buffer.BlockCopy(buffer, 0, bigger, 0, end);
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = bigger;
            }

            var read = stream.Read(buffer, end, buffer.Length - end);
            if (read == 0)
            {
                eof = true;
            }

            end += read;
            var total = bufferOffset + end;
            if (total > limits.MaxDecompressedBytes)
            {
                throw new ReadLimitException("input decompresses past the limit at {0}", total,
                    $"more than {limits.MaxDecompressedBytes:N0} bytes; the limit per input", ReadLimits.InputVariable);
            }

            if (compressedPosition is not null && total > ReadLimits.RatioCheckAfterBytes
                && compressedPosition() is > 0 and var compressed && total / (double)compressed > limits.MaxCompressionRatio)
            {
                throw new ReadLimitException($"input at {{0}} decompresses to more than {limits.MaxCompressionRatio:0}x its compressed size ({total:N0} bytes from {compressed:N0}): a compression bomb, not text", total,
                    $"the limit is {limits.MaxCompressionRatio:0}:1", ReadLimits.RatioVariable);
            }
        }

        private void CheckLine(long length)
        {
            if (length > limits.MaxDocumentBytes)
            {
                throw new ReadLimitException("document at {0} exceeds " + ReadLimits.Size(limits.MaxDocumentBytes), bufferOffset + start,
                    "the limit per document", ReadLimits.DocumentVariable);
            }
        }
    }
}

/// <summary>Raised when a gzip stream's CRC-32/size trailer does not match what was decompressed.</summary>
internal sealed class GzipTrailerException(string message, bool looksTruncated) : IOException(message)
{
    public bool LooksTruncated { get; } = looksTruncated;
}

/// <summary>
/// .NET's GZipStream ends silently on a truncated file. This wrapper checks the CRC-32 and length of what it
/// decompressed against the file's trailer (last 8 bytes) when the stream ends. Single-member gzip only, which is
/// what gzip and Python's gzip module write.
/// </summary>
internal sealed class GzipVerifyingStream : Stream
{
    private readonly FileStream file;
    private readonly GZipStream inner;
    private uint crc = 0xFFFFFFFFu;
    private long length;
    private bool verified;

    public GzipVerifyingStream(FileStream file)
    {
        this.file = file;
        inner = new GZipStream(file, CompressionMode.Decompress, leaveOpen: true);
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => length; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var read = inner.Read(buffer, offset, count);
        if (read > 0)
        {
            crc = Crc32.Update(crc, buffer.AsSpan(offset, read));
            length += read;
        }
        else if (!verified)
        {
            verified = true;
            Verify();
        }

        return read;
    }

    private void Verify()
    {
        if (file.Length < 18)
        {
            throw new GzipTrailerException($"gzip file of {file.Length} bytes is shorter than a header and trailer", looksTruncated: true);
        }

        Span<byte> trailer = stackalloc byte[8];
        using var probe = new FileStream(file.Name, FileMode.Open, FileAccess.Read, FileShare.Read);
        probe.Seek(-8, SeekOrigin.End);
        probe.ReadExactly(trailer);
        var expectedCrc = BitConverter.ToUInt32(trailer[..4]);
        var expectedSize = BitConverter.ToUInt32(trailer[4..]);
        var actualCrc = crc ^ 0xFFFFFFFFu;
        if (expectedCrc != actualCrc || expectedSize != (uint)length)
        {
            throw new GzipTrailerException(
                $"decompressed {length} bytes with CRC-32 {actualCrc:x8}, but the trailer says {expectedSize} bytes with CRC-32 {expectedCrc:x8}",
                looksTruncated: expectedSize != (uint)length);
        }
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>CRC-32 (IEEE 802.3, the gzip one).</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Build();

    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return crc;
    }

    private static uint[] Build()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[i] = c;
        }

        return table;
    }
}

/// <summary>Text lengths as the released code measures them (Python's len(): Unicode code points).</summary>
public static class TextLength
{
    public static int CodePoints(string text)
    {
        var count = text.Length;
        foreach (var c in text)
        {
            if (char.IsLowSurrogate(c))
            {
                count--;
            }
        }

        return count;
    }
}
