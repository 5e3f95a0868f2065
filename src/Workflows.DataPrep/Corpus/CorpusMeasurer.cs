using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Corpus;

/// <summary>
/// Pass 1 for one input file: read every document, tokenize it, and write the length index and token cache.
/// The result depends only on the file's bytes, the reader options and the tokenizer: batches are tokenized in
/// parallel but written in file order.
/// </summary>
public static class CorpusMeasurer
{
    private const int BatchDocuments = 512;
    private const long BatchChars = 8_000_000;

    /// <param name="onProgress">Called after each batch with (documents, tokens, input bytes so far is not known: 0).</param>
    public static Task<LengthIndex> MeasureAsync(
        InputFile file,
        CorpusReaderOptions readerOptions,
        ITokenizer tokenizer,
        string indexFolder,
        int threads,
        Action<long, long>? onProgress,
        CancellationToken cancellationToken) =>
        Task.Run(() => Measure(file, readerOptions, tokenizer, indexFolder, threads, onProgress, cancellationToken), cancellationToken);

    public static LengthIndex Measure(
        InputFile file,
        CorpusReaderOptions readerOptions,
        ITokenizer tokenizer,
        string indexFolder,
        int threads,
        Action<long, long>? onProgress,
        CancellationToken cancellationToken)
    {
        var inputBytes = new FileInfo(file.Path).Length;
        var sha = Sha256Of(file.Path);
        var fingerprint = ReaderFingerprint(readerOptions);
        var tokenBytes = tokenizer.VocabularySize <= 65536 ? 2 : 4;

        var existing = LengthIndexStore.TryLoad(indexFolder, file.Key);
        if (existing is { Header: var h } && h.InputSha256 == sha && h.ReaderFingerprint == fingerprint && h.TokenizerId == tokenizer.Id)
        {
            return existing; // measured before from the same bytes, read and tokenized the same way
        }

        Directory.CreateDirectory(indexFolder);
        var cachePath = LengthIndexStore.TokenCachePath(indexFolder, file.Key);
        var cacheTemp = cachePath + ".tmp-" + Environment.ProcessId + "-" + Environment.CurrentManagedThreadId;
        var docs = new List<DocumentLength>();
        var log = new BadRecordLog(readerOptions.SkipBadRecords);
        long tokens = 0;
        long chars = 0;
        try
        {
            using (var cache = new FileStream(cacheTemp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                var batch = new List<CorpusDocument>(BatchDocuments);
                long batchChars = 0;
                var results = new List<int>?[BatchDocuments];
                var bytes = new byte[1 << 16];

                void Flush()
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    Parallel.For(0, batch.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, i =>
                    {
                        var ids = new List<int>(batch[i].Text.Length / 3 + 8);
                        tokenizer.Encode(batch[i].Text, ids);
                        results[i] = ids;
                    });
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var ids = results[i]!;
                        results[i] = null;
                        WriteIds(cache, ids, tokenBytes, tokenizer.VocabularySize, ref bytes, batch[i]);
                        var cp = TextLength.CodePoints(batch[i].Text);
                        docs.Add(new DocumentLength(batch[i].Line, batch[i].Source, cp, ids.Count));
                        tokens += ids.Count;
                        chars += cp;
                    }

                    batch.Clear();
                    batchChars = 0;
                    onProgress?.Invoke(docs.Count, tokens);
                }

                foreach (var doc in CorpusReader.Read(file, readerOptions, log))
                {
                    batch.Add(doc);
                    batchChars += doc.Text.Length;
                    if (batch.Count == BatchDocuments || batchChars >= BatchChars)
                    {
                        Flush();
                    }
                }

                if (batch.Count > 0)
                {
                    Flush();
                }
            }

            File.Move(cacheTemp, cachePath, overwrite: true);
        }
        catch
        {
            File.Delete(cacheTemp);
            throw;
        }

        var header = new LengthIndexHeader(file.Key, sha, inputBytes, fingerprint, tokenizer.Id, tokenBytes, docs.Count, tokens, chars, log.ToSummary());
        var index = new LengthIndex(header, [.. docs]);
        LengthIndexStore.Write(indexFolder, index);
        return index;
    }

    private static void WriteIds(Stream cache, List<int> ids, int tokenBytes, int vocabularySize, ref byte[] bytes, CorpusDocument doc)
    {
        var needed = ids.Count * tokenBytes;
        if (bytes.Length < needed)
        {
            bytes = new byte[Math.Max(needed, bytes.Length * 2)];
        }

        var span = bytes.AsSpan(0, needed);
        for (var i = 0; i < ids.Count; i++)
        {
            var id = ids[i];
            if ((uint)id >= (uint)vocabularySize)
            {
                throw new InvalidOperationException($"{doc.File}: line {doc.Line}: tokenizer produced id {id} outside its vocabulary of {vocabularySize}");
            }

            if (tokenBytes == 2)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(span[(2 * i)..], (ushort)id);
            }
            else
            {
                BinaryPrimitives.WriteInt32LittleEndian(span[(4 * i)..], id);
            }
        }

        cache.Write(span);
    }

    public static string Sha256Of(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public static string ReaderFingerprint(CorpusReaderOptions o) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"v1|{o.TextField}|{o.SourceField}|{o.ParquetTextColumn}|{o.ParquetSourceColumn}|{o.SkipBadRecords}")))[..16];
}
