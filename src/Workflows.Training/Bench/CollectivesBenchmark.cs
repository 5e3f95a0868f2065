using System.Diagnostics;
using Workflows.Training.Distributed;
using static TorchSharp.torch;

namespace Workflows.Training.Bench;

/// <summary>One collective at one size: whether every element came out right, and its bandwidth.</summary>
/// <param name="AlgorithmGBps">Bytes of the tensor per second (nccl-tests' algbw).</param>
/// <param name="BusGBps">nccl-tests' busbw: algbw × 2(n−1)/n for all-reduce, × (n−1)/n for all-gather, × 1 for broadcast.</param>
public sealed record CollectiveMeasurement(string Operation, long Bytes, int Ranks, bool Correct, double MillisecondsPerCall, double AlgorithmGBps, double BusGBps);

/// <summary>
/// <c>wf bench collectives</c>: each collective the trainer uses, on float32 tensors of the given sizes, checked element
/// by element (rank r contributes r + 1, so an all-reduce must give n(n+1)/2 everywhere) and timed. With one rank on
/// CUDA it proves the NCCL calls (communicator, stream, pointers) on a single GPU; with N ranks it measures the
/// interconnect the way nccl-tests does.
/// </summary>
public static class CollectivesBenchmark
{
    public static IReadOnlyList<CollectiveMeasurement> Run(ICollectives group, Device device, IReadOnlyList<long> sizesBytes, int iterations)
    {
        var results = new List<CollectiveMeasurement>();
        int n = group.WorldSize, r = group.Rank;
        foreach (long bytes in sizesBytes)
        {
            long count = Math.Max(n, bytes / sizeof(float)) / n * n;   // all-gather needs a multiple of the rank count
            using var scope = NewDisposeScope();

            var sum = full(count, r + 1f, ScalarType.Float32, device);
            results.Add(Measure("all-reduce", count, n, iterations, device, 2.0 * (n - 1) / n,
                () => group.AllReduceSum(sum),
                () =>
                {
                    sum.fill_(r + 1f);
                    group.AllReduceSum(sum);
                    return sum.eq(n * (n + 1) / 2f).all().item<bool>();
                }));

            var part = full(count / n, r + 1f, ScalarType.Float32, device);
            var gathered = empty(count, ScalarType.Float32, device);
            var expected = arange(1, n + 1, ScalarType.Float32, device).repeat_interleave(count / n);
            results.Add(Measure("all-gather", count, n, iterations, device, (n - 1) / (double)n,
                () => group.AllGather(part, gathered),
                () =>
                {
                    gathered.zero_();
                    group.AllGather(part, gathered);
                    return gathered.eq(expected).all().item<bool>();
                }));

            var broadcast = full(count, r + 1f, ScalarType.Float32, device);
            results.Add(Measure("broadcast", count, n, iterations, device, 1.0,
                () => group.Broadcast(broadcast, 0),
                () =>
                {
                    broadcast.fill_(r + 1f);
                    group.Broadcast(broadcast, 0);
                    return broadcast.eq(1f).all().item<bool>();
                }));
        }
        group.Barrier();
        return results;
    }

    static CollectiveMeasurement Measure(string operation, long count, int ranks, int iterations, Device device, double busFactor, Action call, Func<bool> check)
    {
        bool correct = check();
        call(); // warm-up
        BenchModels.Synchronize(device);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) call();
        BenchModels.Synchronize(device);
        double seconds = clock.Elapsed.TotalSeconds / Math.Max(1, iterations);
        long bytes = count * sizeof(float);
        double algorithm = bytes / seconds / 1e9;
        return new CollectiveMeasurement(operation, bytes, ranks, correct, seconds * 1e3, algorithm, algorithm * busFactor);
    }
}
