using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Corpus;

/// <summary>What the measure pass records for one document: where it is, its source and its two lengths.</summary>
public readonly record struct DocumentLength(long Line, SlimPajamaSource Source, int Chars, int Tokens);

/// <summary>What identifies one length index: input bytes, how they were read, how they were tokenized.</summary>
public sealed record LengthIndexHeader(
    string FileKey,
    string InputSha256,
    long InputBytes,
    string ReaderFingerprint,
    string TokenizerId,
    int TokenBytes,
    long Documents,
    long Tokens,
    long Chars,
    BadRecordSummary Skipped);

/// <summary>
/// Pass 1's output for one input file: every document's line, source, length in code points and in tokens,
/// plus (beside it, in the token cache) the token ids of every document back to back. Small enough to hand to
/// every shard task; the plan is a pure function of these and the options.
/// </summary>
public sealed class LengthIndex
{
    private long[]? tokenOffsets;

    public LengthIndex(LengthIndexHeader header, DocumentLength[] documents)
    {
        Header = header;
        Documents = documents;
    }

    public LengthIndexHeader Header { get; }

    public string FileKey => Header.FileKey;

    public IReadOnlyList<DocumentLength> Documents { get; }

    /// <summary>Offset (in tokens) of each document in the token cache; one extra entry holds the total.</summary>
    public long[] TokenOffsets
    {
        get
        {
            if (tokenOffsets is null)
            {
                var offsets = new long[Documents.Count + 1];
                for (var i = 0; i < Documents.Count; i++)
                {
                    offsets[i + 1] = offsets[i] + Documents[i].Tokens;
                }

                tokenOffsets = offsets;
            }

            return tokenOffsets;
        }
    }
}

/// <summary>
/// Files of the measure pass under one folder: <c>NAME.lengths</c> (header + records) and <c>NAME.tokens</c>
/// (ids, little-endian, 2 bytes each when the vocabulary fits, else 4). The token cache is written first and the
/// index last, each atomically, so an index that exists vouches for a complete cache.
/// </summary>
public static class LengthIndexStore
{
    private static readonly byte[] Magic = "WFLIDX01"u8.ToArray();
    private const int RecordBytes = 8 + 1 + 4 + 4;

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    public static string IndexPath(string folder, string fileKey) => Path.Combine(folder, SafeName(fileKey) + ".lengths");

    public static string TokenCachePath(string folder, string fileKey) => Path.Combine(folder, SafeName(fileKey) + ".tokens");

    /// <summary>A file name for a key: readable, and unique through a hash of the key.</summary>
    public static string SafeName(string fileKey)
    {
        var readable = new string(fileKey.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_').ToArray());
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(fileKey)))[..8];
        return $"{readable}.{hash}";
    }

    public static void Write(string folder, LengthIndex index) => WriteFile(IndexPath(folder, index.FileKey), index);

    /// <summary>Writes an index to <paramref name="path"/> atomically (the planner's lengths cache names files by content).</summary>
    public static void WriteFile(string path, LengthIndex index)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = path + ".tmp-" + Environment.ProcessId + "-" + Environment.CurrentManagedThreadId;
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            var header = JsonSerializer.SerializeToUtf8Bytes(index.Header, Json);
            stream.Write(Magic);
            Span<byte> buffer = stackalloc byte[RecordBytes];
            BinaryPrimitives.WriteInt32LittleEndian(buffer, header.Length);
            stream.Write(buffer[..4]);
            stream.Write(header);
            foreach (var d in index.Documents)
            {
                BinaryPrimitives.WriteInt64LittleEndian(buffer, d.Line);
                buffer[8] = (byte)d.Source;
                BinaryPrimitives.WriteInt32LittleEndian(buffer[9..], d.Chars);
                BinaryPrimitives.WriteInt32LittleEndian(buffer[13..], d.Tokens);
                stream.Write(buffer);
            }
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Loads an index, or returns null when none exists; a damaged one is an error.</summary>
    public static LengthIndex? TryLoad(string folder, string fileKey) => TryLoadFile(IndexPath(folder, fileKey), requireTokenCache: true);

    /// <summary>
    /// Loads the index at <paramref name="path"/> (null when absent). Data prep requires its token cache beside it;
    /// the planner, which only needs the lengths, does not (<paramref name="requireTokenCache"/> false).
    /// </summary>
    public static LengthIndex? TryLoadFile(string path, bool requireTokenCache)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length + 4 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path}: not a length index");
        }

        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(Magic.Length));
        var header = JsonSerializer.Deserialize<LengthIndexHeader>(bytes.AsSpan(Magic.Length + 4, headerLength), Json)
            ?? throw new InvalidDataException($"{path}: empty header");
        var body = bytes.AsSpan(Magic.Length + 4 + headerLength);
        if (body.Length != header.Documents * RecordBytes)
        {
            throw new InvalidDataException($"{path}: {body.Length} record bytes for {header.Documents} documents");
        }

        var docs = new DocumentLength[header.Documents];
        for (var i = 0; i < docs.Length; i++)
        {
            var r = body.Slice(i * RecordBytes, RecordBytes);
            docs[i] = new DocumentLength(
                BinaryPrimitives.ReadInt64LittleEndian(r),
                (SlimPajamaSource)r[8],
                BinaryPrimitives.ReadInt32LittleEndian(r[9..]),
                BinaryPrimitives.ReadInt32LittleEndian(r[13..]));
        }

        var cache = Path.ChangeExtension(path, ".tokens");
        var expected = header.Tokens * header.TokenBytes;
        if (requireTokenCache && (!File.Exists(cache) || new FileInfo(cache).Length != expected))
        {
            throw new InvalidDataException($"{cache}: token cache missing or not {expected} bytes; delete {path} to measure again");
        }

        return new LengthIndex(header, docs);
    }
}
