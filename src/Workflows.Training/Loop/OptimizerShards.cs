using System.Buffers.Binary;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>
/// The optimizer state of a data-parallel checkpoint: one file per rank, <c>optimizer-shard-RRR-of-NNN.bin</c>, holding
/// the rank's range of the flat parameter space: <c>start, count, step</c> (little-endian int64), then the fp32 master
/// weights, first and second moments of those elements. A checkpoint written by N ranks resumes at any other number
/// of ranks (each rank reads the elements of its new range from whichever files hold them), and a one-process
/// checkpoint (<c>model.safetensors</c> + <c>optimizer.bin</c>) resumes sharded and back.
/// </summary>
public static partial class OptimizerShards
{
    const long Slice = 1L << 24;

    public static string FileName(int rank, int worldSize) => $"optimizer-shard-{rank:D3}-of-{worldSize:D3}.bin";

    sealed record Shard(string Path, long Start, long Count, long Step);

    public static void Write(string path, MasterAdamW optimizer)
    {
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteInt64LittleEndian(header, optimizer.Start);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], optimizer.Count);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], optimizer.StepCount);
        file.Write(header);
        for (int part = 0; part < 3; part++)
            for (long at = 0; at < optimizer.Count; at += Slice)
            {
                long n = Math.Min(Slice, optimizer.Count - at);
                if (part == 0)
                {
                    using var master = optimizer.ReadMaster(at, n);
                    file.Write(master.bytes);
                }
                else
                {
                    var (m, v) = optimizer.ReadMomentRange(at, n);
                    using (m)
                    using (v)
                        file.Write((part == 1 ? m : v).bytes);
                }
            }
        file.Flush(flushToDisk: true);
    }

    /// <summary>The shard files of a checkpoint folder (empty for a one-process checkpoint).</summary>
    public static IReadOnlyList<string> Find(string folder) =>
        Directory.EnumerateFiles(folder).Where(f => ShardName().IsMatch(System.IO.Path.GetFileName(f))).Order(StringComparer.Ordinal).ToList();

    /// <summary>Fills <paramref name="optimizer"/>'s range from the shard files that overlap it.</summary>
    public static void Read(IReadOnlyList<string> files, MasterAdamW optimizer)
    {
        var shards = files.Select(ReadHeader).OrderBy(s => s.Start).ToList();
        long covered = 0;
        foreach (var shard in shards)
        {
            long from = Math.Max(shard.Start, optimizer.Start), to = Math.Min(shard.Start + shard.Count, optimizer.Start + optimizer.Count);
            if (from >= to) continue;
            using var file = File.OpenRead(shard.Path);
            CopyRange(file, 24, shard.Count, from - shard.Start, to - from, from - optimizer.Start, optimizer);
            optimizer.SetStepCount(checked((int)shard.Step));
            covered += to - from;
        }
        if (covered != optimizer.Count)
            throw new InvalidDataException($"the checkpoint's optimizer shards cover {covered:N0} of this rank's {optimizer.Count:N0} elements");
    }

    /// <summary>Fills <paramref name="optimizer"/>'s moments and step count from a one-process <c>optimizer.bin</c> (<c>count, step, m, v</c>).</summary>
    public static void ReadSingle(Stream file, long total, MasterAdamW optimizer)
    {
        Span<byte> header = stackalloc byte[16];
        file.ReadExactly(header);
        long count = BinaryPrimitives.ReadInt64LittleEndian(header);
        if (count != total) throw new InvalidDataException($"the optimizer state holds {count} elements, the model has {total}");
        optimizer.SetStepCount(checked((int)BinaryPrimitives.ReadInt64LittleEndian(header[8..])));
        // The master weights came from model.safetensors: here only the moments, at offsets 16 + 4·i and 16 + 4·(count + i).
        for (int part = 1; part < 3; part++)
            for (long at = 0; at < optimizer.Count; at += Slice)
            {
                long n = Math.Min(Slice, optimizer.Count - at);
                file.Position = 16 + 4 * ((part - 1) * count + optimizer.Start + at);
                var bytes = new byte[n * 4];
                file.ReadExactly(bytes);
                using var values = empty(n, ScalarType.Float32);
                values.bytes = bytes;
                var (m, v) = optimizer.ReadMomentRange(at, n);
                using (m)
                using (v)
                    if (part == 1) optimizer.SetMomentRange(at, values, v);
                    else optimizer.SetMomentRange(at, m, values);
            }
    }

    // Copies elements [offset, offset+n) of a shard (count elements after a header) to this optimizer at `to`.
    static void CopyRange(Stream file, long header, long count, long offset, long n, long to, MasterAdamW optimizer)
    {
        for (long at = 0; at < n; at += Slice)
        {
            long k = Math.Min(Slice, n - at);
            var parts = new Tensor[3];
            for (int part = 0; part < 3; part++)
            {
                file.Position = header + 4 * ((part * count) + offset + at);
                var bytes = new byte[k * 4];
                file.ReadExactly(bytes);
                parts[part] = empty(k, ScalarType.Float32);
                parts[part].bytes = bytes;
            }
            optimizer.SetMaster(to + at, parts[0]);
            optimizer.SetMomentRange(to + at, parts[1], parts[2]);
            foreach (var p in parts) p.Dispose();
        }
    }

    static Shard ReadHeader(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> header = stackalloc byte[24];
        file.ReadExactly(header);
        long count = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (file.Length != 24 + (12 * count)) throw new InvalidDataException($"{path}: {file.Length} bytes, its header promises {24 + (12 * count)}");
        return new Shard(path, BinaryPrimitives.ReadInt64LittleEndian(header), count, BinaryPrimitives.ReadInt64LittleEndian(header[16..]));
    }

    [GeneratedRegex(@"^optimizer-shard-\d{3}-of-\d{3}\.bin$")]
    private static partial Regex ShardName();
}
