using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Paths;

namespace Workflows.DataPrep.Corpus;

/// <summary>
/// Pass 1 for one input file: read every document, tokenize it, and write the length index and token cache.
/// The result depends only on the file's bytes, the reader options and the tokenizer: batches are read on one thread,
/// tokenized in parallel on others, and written in file order.
/// </summary>
public static class CorpusMeasurer
{
    // Small batches: the window of batches in flight bounds memory, and a thread's last batch of a file is short.
    private const int BatchDocuments = 64;
    private const long BatchChars = 1 << 19;

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
        using var workers = new MeasureWorkers(threads);
        return Measure(file, readerOptions, tokenizer, indexFolder, workers, onProgress, cancellationToken);
    }

    /// <summary>Pass 1 for one input on tokenizer threads shared with other inputs (see <see cref="MeasureWorkers"/>).</summary>
    public static LengthIndex Measure(
        InputFile file,
        CorpusReaderOptions readerOptions,
        ITokenizer tokenizer,
        string indexFolder,
        MeasureWorkers workers,
        Action<long, long>? onProgress,
        CancellationToken cancellationToken)
    {
        var threads = workers.Count;
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
        var log = new BadRecordLog(readerOptions.SkipBadRecords);
        MeasuredTotals totals;
        try
        {
            // Unbuffered: the ordered writer hands the stream one large, already contiguous block per batch.
            using (var cache = new FileStream(cacheTemp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                totals = new MeasurePipeline(file, readerOptions, tokenizer, tokenBytes, threads, cache, log, onProgress)
                    .Run(workers, cancellationToken);
            }

            File.Move(cacheTemp, cachePath, overwrite: true);
        }
        catch
        {
            File.Delete(cacheTemp);
            throw;
        }

        var header = new LengthIndexHeader(file.Key, sha, inputBytes, fingerprint, tokenizer.Id, tokenBytes,
            totals.Documents.Count, totals.Tokens, totals.Chars, log.ToSummary());
        var index = new LengthIndex(header, [.. totals.Documents]);
        LengthIndexStore.Write(indexFolder, index);
        return index;
    }

    /// <summary>
    /// Pass 1 without the token cache: every document's line, source and lengths, for statistics (<c>wf corpus stats</c>,
    /// <c>wf corpus upload</c>). Nothing is written; the ids are counted and dropped.
    /// </summary>
    public static LengthIndex MeasureLengths(
        InputFile file,
        CorpusReaderOptions readerOptions,
        ITokenizer tokenizer,
        MeasureWorkers workers,
        Action<long, long>? onProgress,
        CancellationToken cancellationToken,
        string? sha256 = null)
    {
        var sha = sha256 ?? Sha256Of(file.Path);
        var log = new BadRecordLog(readerOptions.SkipBadRecords);
        var totals = new MeasurePipeline(file, readerOptions, tokenizer, tokenizer.VocabularySize <= 65536 ? 2 : 4, workers.Count, Stream.Null, log, onProgress)
            .Run(workers, cancellationToken);
        var header = new LengthIndexHeader(file.Key, sha, new FileInfo(file.Path).Length, ReaderFingerprint(readerOptions), tokenizer.Id,
            tokenizer.VocabularySize <= 65536 ? 2 : 4, totals.Documents.Count, totals.Tokens, totals.Chars, log.ToSummary());
        return new LengthIndex(header, [.. totals.Documents]);
    }

    /// <summary>
    /// <see cref="MeasureLengths"/> cached in <paramref name="cacheFolder"/> under the file's content (SHA-256,
    /// tokenizer, reader settings), so planning the same inputs again does not tokenize them again. The cached index
    /// gets this file's key (the same bytes may sit at another path).
    /// </summary>
    public static LengthIndex MeasureLengthsCached(InputFile file, CorpusReaderOptions readerOptions, ITokenizer tokenizer, MeasureWorkers workers,
        string cacheFolder, CancellationToken cancellationToken)
    {
        var sha = Sha256Of(file.Path);
        var path = Path.Combine(cacheFolder, ContentKey(sha, tokenizer.Id, readerOptions) + ".lengths");
        if (LengthIndexStore.TryLoadFile(path, requireTokenCache: false) is { Header: var h } cached
            && h.InputSha256 == sha && h.TokenizerId == tokenizer.Id && h.ReaderFingerprint == ReaderFingerprint(readerOptions))
        {
            return new LengthIndex(h with { FileKey = file.Key }, [.. cached.Documents]);
        }

        var index = MeasureLengths(file, readerOptions, tokenizer, workers, null, cancellationToken, sha);
        LengthIndexStore.WriteFile(path, index);
        return index;
    }

    /// <summary>What a measurement of one file depends on: its bytes, the tokenizer and the reader settings.</summary>
    public static string ContentKey(string sha256, string tokenizerId, CorpusReaderOptions reader) =>
        sha256 + "." + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{tokenizerId}|{ReaderFingerprint(reader)}")))[..16];

    private sealed record MeasuredTotals(List<DocumentLength> Documents, long Tokens, long Chars);

    /// <summary>
    /// One reader thread (decompress + JSON) feeds batches to <c>threads</c> tokenizer threads; whichever thread finishes
    /// the next batch in file order appends it to the token cache. Reading therefore overlaps tokenizing, and memory is
    /// bounded by a window of batches in flight (read but not yet written), not by the file: the reader waits for a
    /// free slot before it hands on a batch. Output is in file order, so it is the same for any thread count.
    /// </summary>
    private sealed class MeasurePipeline(
        InputFile file,
        CorpusReaderOptions readerOptions,
        ITokenizer tokenizer,
        int tokenBytes,
        int threads,
        Stream cache,
        BadRecordLog log,
        Action<long, long>? onProgress)
    {
        private readonly Lock writeLock = new();
        private readonly Dictionary<long, Batch> finished = [];

        // Token buffers of written batches, handed to later batches: at most a window's worth ever exist, and they go
        // with the pipeline at the end of the file (a shared pool would keep the largest ones for the process's life).
        private readonly ConcurrentBag<byte[]> spareBuffers = [];
        private readonly List<DocumentLength> documents = [];
        private long nextToWrite;
        private long tokens;
        private long chars;

        public MeasuredTotals Run(MeasureWorkers workers, CancellationToken cancellationToken)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var window = new SemaphoreSlim(WindowBatches(threads));

            // One count for the reader plus one per batch handed to the workers: the cache stream may only be closed
            // once no worker can still touch it, error or not.
            using var pending = new CountdownEvent(1);
            Exception? workerError = null;
            void Process(Batch batch)
            {
                try
                {
                    if (!cts.IsCancellationRequested)
                    {
                        Tokenize(batch, workers.Ids);
                        WriteInOrder(batch, window);
                    }
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref workerError, e, null);
                    cts.Cancel(); // stop the reader; the batches still queued are skipped
                }
                finally
                {
                    pending.Signal();
                }
            }

            Exception? readError = null;
            try
            {
                long sequence = 0;
                var batch = new Batch(sequence++);
                foreach (var doc in CorpusReader.Read(file, readerOptions, log))
                {
                    batch.Documents.Add(doc);
                    batch.Chars += doc.Text.Length;
                    if (batch.Documents.Count == BatchDocuments || batch.Chars >= BatchChars)
                    {
                        window.Wait(cts.Token);
                        pending.AddCount();
                        var full = batch;
                        workers.Post(() => Process(full));
                        batch = new Batch(sequence++);
                    }
                }

                if (batch.Documents.Count > 0)
                {
                    window.Wait(cts.Token);
                    pending.AddCount();
                    workers.Post(() => Process(batch));
                }
            }
            catch (Exception e)
            {
                readError = e;
                cts.Cancel();
            }

            pending.Signal();
            pending.Wait();

            if (readError is not null and not OperationCanceledException)
            {
                ExceptionDispatchInfo.Capture(readError).Throw();
            }

            if (workerError is not null)
            {
                ExceptionDispatchInfo.Capture(workerError).Throw();
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (readError is not null)
            {
                ExceptionDispatchInfo.Capture(readError).Throw();
            }

            if (finished.Count > 0)
            {
                throw new InvalidOperationException($"{finished.Count} measured batches of {file.Key} were never written.");
            }

            return new MeasuredTotals(documents, tokens, chars);
        }

        /// <summary>Batches read but not yet written: enough to keep every tokenizer thread busy behind one long document.</summary>
        private static int WindowBatches(int threads) => (2 * threads) + 2;

        private void Tokenize(Batch batch, List<int> ids)
        {
            var vocabulary = tokenizer.VocabularySize;
            batch.Lengths = new DocumentLength[batch.Documents.Count];
            var used = 0;
            for (var d = 0; d < batch.Documents.Count; d++)
            {
                var doc = batch.Documents[d];
                ids.Clear();
                tokenizer.Encode(doc.Text, ids);
                var needed = used + (ids.Count * tokenBytes);
                if (batch.Bytes.Length < needed)
                {
                    var bigger = RentBuffer(Math.Max(needed, batch.Bytes.Length * 2));
                    batch.Bytes.AsSpan(0, used).CopyTo(bigger);
                    ReturnBytes(batch);
                    batch.Bytes = bigger;
                }

                var span = batch.Bytes.AsSpan(used, ids.Count * tokenBytes);
                var idSpan = CollectionsMarshal.AsSpan(ids);
                for (var i = 0; i < idSpan.Length; i++)
                {
                    var id = idSpan[i];
                    if ((uint)id >= (uint)vocabulary)
                    {
                        throw new InvalidOperationException($"{doc.File}: line {doc.Line}: tokenizer produced id {id} outside its vocabulary of {vocabulary}");
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

                used = needed;
                batch.Lengths[d] = new DocumentLength(doc.Line, doc.Source, TextLength.CodePoints(doc.Text), ids.Count);
            }

            batch.ByteCount = used;
            batch.Documents.Clear(); // the texts are done with: let them go while the batch waits for its turn
        }

        private void WriteInOrder(Batch batch, SemaphoreSlim window)
        {
            lock (writeLock)
            {
                finished.Add(batch.Sequence, batch);
                while (finished.Remove(nextToWrite, out var next))
                {
                    cache.Write(next.Bytes, 0, next.ByteCount);
                    foreach (var length in next.Lengths)
                    {
                        documents.Add(length);
                        tokens += length.Tokens;
                        chars += length.Chars;
                    }

                    ReturnBytes(next);
                    nextToWrite++;
                    window.Release();
                    onProgress?.Invoke(documents.Count, tokens);
                }
            }
        }

        private byte[] RentBuffer(int atLeast)
        {
            if (spareBuffers.TryTake(out var spare))
            {
                if (spare.Length >= atLeast)
                {
                    return spare;
                }

                // too small for this batch: drop it (the new, larger one replaces it in the bag later)
            }

            return new byte[Math.Max(atLeast, MinimumBufferBytes)];
        }

        private void ReturnBytes(Batch batch)
        {
            if (batch.Bytes.Length > 0)
            {
                spareBuffers.Add(batch.Bytes);
            }

            batch.Bytes = [];
        }

        /// <summary>About what a full batch of ordinary text needs (512 K chars is roughly 150 K tokens of 2 bytes).</summary>
        private const int MinimumBufferBytes = 1 << 19;
    }

    private sealed class Batch(long sequence)
    {
        public long Sequence { get; } = sequence;

        public List<CorpusDocument> Documents { get; } = new(BatchDocuments);

        public long Chars { get; set; }

        public DocumentLength[] Lengths { get; set; } = [];

        public byte[] Bytes { get; set; } = [];

        public int ByteCount { get; set; }
    }

    public static string Sha256Of(string path)
    {
        using var stream = PathPolicy.Current.OpenRead(path, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public static string ReaderFingerprint(CorpusReaderOptions o) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"v1|{o.TextField}|{o.SourceField}|{o.ParquetTextColumn}|{o.ParquetSourceColumn}|{o.SkipBadRecords}")))[..16];
}

/// <summary>
/// Tokenizer threads for the measure pass, shared by every file one task measures (several at once, each with its own
/// reader). They live as long as this object, so the tokenizer's per-thread caches stay warm from file to file
/// instead of being rebuilt for each (which costs both time and allocations). Work items must not throw.
/// </summary>
public sealed class MeasureWorkers : IDisposable
{
    private readonly BlockingCollection<Action> work = new(new ConcurrentQueue<Action>());
    private readonly Thread[] threads;

    [ThreadStatic]
    private static List<int>? t_ids;

    public MeasureWorkers(int count)
    {
        Count = Math.Max(1, count);
        threads = new Thread[Count];
        for (var i = 0; i < Count; i++)
        {
            threads[i] = new Thread(() =>
            {
                foreach (var item in work.GetConsumingEnumerable())
                {
                    item();
                }
            })
            { IsBackground = true, Name = $"measure-tokenizer-{i}" };
            threads[i].Start();
        }
    }

    public int Count { get; }

    /// <summary>The calling worker thread's reusable id list.</summary>
    internal List<int> Ids => t_ids ??= new List<int>(1 << 16);

    internal void Post(Action item) => work.Add(item);

    public void Dispose()
    {
        work.CompleteAdding();
        foreach (var thread in threads)
        {
            thread.Join();
        }

        work.Dispose();
    }
}
