using System.Diagnostics;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Benchmarks;

/// <summary>Result of one throughput run. MB/s are decimal megabytes (10^6 bytes) per second.</summary>
public sealed record ThroughputResult(
    long SizeBytes,
    TimeSpan UploadTime,
    TimeSpan DownloadTime,
    TimeSpan StreamingReadTime,
    string Sha256)
{
    public double UploadMBps => SizeBytes / 1e6 / UploadTime.TotalSeconds;

    /// <summary>Parallel ranged download (<see cref="IArtifactStore.DownloadToAsync"/>), hash-verified.</summary>
    public double DownloadMBps => SizeBytes / 1e6 / DownloadTime.TotalSeconds;

    /// <summary>Single streaming read (<see cref="IArtifactStore.OpenVerifiedAsync"/>), hash-verified.</summary>
    public double StreamingReadMBps => SizeBytes / 1e6 / StreamingReadTime.TotalSeconds;
}

/// <summary>
/// Measures upload and download throughput of an <see cref="IArtifactStore"/> with a generated, non-seekable,
/// never-buffered stream of <c>sizeBytes</c> pseudo-random bytes (incompressible, like token shards). Not a test:
/// meant for <c>wf bench storage</c>.
/// </summary>
public static class ArtifactThroughputBenchmark
{
    public static async Task<ThroughputResult> RunAsync(IArtifactStore store, long sizeBytes, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sizeBytes);
        var name = $"bench/throughput-{Guid.NewGuid():N}.bin";
        try
        {
            var up = Stopwatch.StartNew();
            var stored = await store.PutAsync(name, new GeneratedStream(sizeBytes, seed: 42), cancellationToken).ConfigureAwait(false);
            up.Stop();
            if (stored.Length != sizeBytes)
            {
                throw new InvalidOperationException($"Uploaded {stored.Length} bytes, expected {sizeBytes}.");
            }

            var down = Stopwatch.StartNew();
            await store.DownloadToAsync(name, Stream.Null, stored.Sha256, cancellationToken).ConfigureAwait(false);
            down.Stop();

            var read = Stopwatch.StartNew();
            await using (var stream = await store.OpenVerifiedAsync(name, stored.Sha256, sizeBytes, cancellationToken).ConfigureAwait(false))
            {
                await stream.CopyToAsync(Stream.Null, 1 << 20, cancellationToken).ConfigureAwait(false);
            }
            read.Stop();
            return new ThroughputResult(sizeBytes, up.Elapsed, down.Elapsed, read.Elapsed, stored.Sha256);
        }
        finally
        {
            await store.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Forward-only pseudo-random bytes (xorshift64*), generated as read: costs almost no CPU or memory.</summary>
    public sealed class GeneratedStream(long length, ulong seed) : Stream
    {
        private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
        private long _position;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, length - _position);
            var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(buffer[..(n & ~7)]);
            for (var i = 0; i < words.Length; i++)
            {
                words[i] = Next();
            }
            for (var i = n & ~7; i < n; i++)
            {
                buffer[i] = (byte)Next();
            }
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        private ulong Next()
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            return _state * 0x2545F4914F6CDD1DUL;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
