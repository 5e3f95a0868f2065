using System.Diagnostics;
using Workflows.Training.Inference;
using Workflows.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training.Bench;

/// <summary>What <c>wf bench prefill</c> measures on our side.</summary>
/// <param name="Bf16Weights">Convert the whole model to bf16 for inference (what an evaluation on GPU does); else float32.</param>
/// <param name="Lengths">Prompt lengths whose prefill is timed (one prompt each, batch 1).</param>
/// <param name="Repeats">Timed prefills per length; the fastest counts (the first may include cache allocation).</param>
/// <param name="GridLengths">Lengths of the synthetic needle grid (empty = no grid).</param>
/// <param name="GridDepths">Depths per length, evenly spaced from 0 to 100% of the haystack.</param>
/// <param name="ReuseAlign">With reuse, the kept prefix ends at the insertion point rounded down to a multiple of this
/// (1 = exactly at it); the up to ReuseAlign−1 haystack tokens before the needle are prefilled again with the rest.</param>
public sealed record PrefillBenchSettings(
    LlamaConfig Model,
    string Device,
    bool Bf16Weights,
    IReadOnlyList<int> Lengths,
    int ChunkTokens,
    int Repeats,
    IReadOnlyList<int> GridLengths,
    int GridDepths,
    int NeedleTokens = 24,
    int QuestionTokens = 16,
    int NewTokens = 50,
    long Seed = 0,
    int ReuseAlign = 1);

public sealed record PrefillRun(int Length, double Seconds)
{
    public double TokensPerSecond => Length / Seconds;
}

/// <param name="PrefilledTokens">Prompt tokens run through the model (decoded tokens not counted).</param>
public sealed record GridRun(double Seconds, long PrefilledTokens);

/// <param name="IdenticalOutputs">Cells whose greedy tokens are the same with and without reuse.</param>
public sealed record GridResult(int Cells, GridRun WithoutReuse, GridRun WithReuse, int IdenticalOutputs, int NewTokens)
{
    public double Speedup => WithoutReuse.Seconds / WithReuse.Seconds;
}

public sealed record PrefillBenchResult(IReadOnlyList<PrefillRun> Prefill, GridResult? Grid, long? DeviceMemoryUsed, long? DeviceMemoryTotal);

public static class PrefillBenchmark
{
    public static PrefillBenchResult Run(PrefillBenchSettings s)
    {
        if (s.GridLengths.Any(l => l <= s.NeedleTokens + s.QuestionTokens))
            throw new ArgumentException($"grid lengths must exceed needle + question ({s.NeedleTokens + s.QuestionTokens} tokens)");
        var device = TorchDevice.Resolve(s.Device);
        manual_seed(s.Seed);
        using var model = new LlamaModel(s.Model);
        model.to(device);
        if (s.Bf16Weights) model.to(ScalarType.BFloat16);
        model.ComputeType = s.Bf16Weights ? ScalarType.BFloat16 : ScalarType.Float32;
        model.eval();
        using var noGrad = no_grad();
        using var gen = new LlamaGenerator(model, new GeneratorOptions(PrefillChunkTokens: s.ChunkTokens));
        var random = new Random((int)s.Seed);
        Tensor RandomIds(int length) =>
            tensor(Enumerable.Range(0, length).Select(_ => (long)random.Next(s.Model.VocabSize)).ToArray(), [1, length]).to(device);

        var runs = new List<PrefillRun>();
        if (s.Lengths.Count > 0)
        {
            using (var scope = NewDisposeScope()) gen.Prefill(RandomIds(Math.Min(s.Lengths[0], 2 * s.ChunkTokens)));
            gen.Reset();
        }
        foreach (int length in s.Lengths)
        {
            using var scope = NewDisposeScope();
            var ids = RandomIds(length);
            double best = double.PositiveInfinity;
            for (int r = 0; r < Math.Max(1, s.Repeats); r++)
            {
                gen.Reset();
                BenchModels.Synchronize(device);
                var clock = Stopwatch.StartNew();
                gen.Prefill(ids).Dispose();
                BenchModels.Synchronize(device);
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }
            runs.Add(new PrefillRun(length, best));
        }

        GridResult? grid = null;
        if (s.GridLengths.Count > 0 && s.GridDepths > 0)
        {
            var cells = s.GridLengths.Select(length => GridCells.Make(length, s.GridDepths, s.NeedleTokens, s.QuestionTokens, s.Model.VocabSize, random)).ToList();
            var plain = RunGrid(gen, cells, reuse: false, s.NewTokens, device, 1, out var plainOutputs);
            var reused = RunGrid(gen, cells, reuse: true, s.NewTokens, device, s.ReuseAlign, out var reusedOutputs);
            int identical = plainOutputs.Count(kv => reusedOutputs[kv.Key].SequenceEqual(kv.Value));
            grid = new GridResult(plainOutputs.Count, plain, reused, identical, s.NewTokens);
        }
        var memory = device.type == DeviceType.CUDA ? Native.CudaRuntime.MemoryInfo() : null;
        return new PrefillBenchResult(runs, grid, memory?.Used, memory?.Total);
    }

    /// <summary>
    /// Every cell of every length: haystack[..pos] + needle + haystack[pos..] + question, then greedy tokens.
    /// Without reuse each cell is prefilled from scratch. With reuse the cells of a length run in order of
    /// insertion point: the cache keeps the haystack prefix up to the previous cell's point, is truncated back to
    /// it, extended to this cell's point, and only needle + rest + question are prefilled per cell. RoPE scaling
    /// length = the cell length in both modes, so the outputs must be identical (counted).
    /// </summary>
    public static GridRun RunGrid(LlamaGenerator gen, IReadOnlyList<GridCells> lengths, bool reuse, int newTokens, Device device, int align,
        out Dictionary<(int Length, int Depth), int[]> outputs)
    {
        outputs = new();
        long prefilled = 0;
        BenchModels.Synchronize(device);
        var clock = Stopwatch.StartNew();
        foreach (var cells in lengths)
        {
            using var rowScope = NewDisposeScope();
            var hay = cells.Haystack.to(device);
            var needle = cells.Needle.to(device);
            var question = cells.Question.to(device);
            long hayLength = hay.shape[1];
            gen.RopeScalingLength = cells.Length;
            gen.Reset();
            int cached = 0;
            foreach (var (depth, pos) in cells.Positions.Select((p, d) => (d, p)).OrderBy(x => x.p))
            {
                using var scope = NewDisposeScope();
                Tensor rest;
                if (reuse)
                {
                    int anchor = pos - pos % Math.Max(1, align);
                    gen.TruncateTo(cached);
                    if (anchor > cached)
                    {
                        gen.Prefill(hay.narrow(1, cached, anchor - cached)).Dispose();
                        prefilled += anchor - cached;
                        cached = anchor;
                    }
                    rest = cat([hay.narrow(1, anchor, pos - anchor), needle, hay.narrow(1, pos, hayLength - pos), question], 1);
                }
                else
                {
                    gen.Reset();
                    rest = cat([hay.narrow(1, 0, pos), needle, hay.narrow(1, pos, hayLength - pos), question], 1);
                }
                prefilled += rest.shape[1];
                outputs[(cells.Length, depth)] = gen.GenerateGreedy(rest, newTokens)[0];
            }
        }
        BenchModels.Synchronize(device);
        gen.RopeScalingLength = null;
        return new GridRun(clock.Elapsed.TotalSeconds, prefilled);
    }
}

/// <summary>The synthetic needle cells of one length (random token ids; the twin builds them the same way).</summary>
public sealed record GridCells(int Length, Tensor Haystack, Tensor Needle, Tensor Question, IReadOnlyList<int> Positions)
{
    /// <summary>Haystack of length − needle − question tokens; insertion points round(i/(depths−1) · haystack) (banker's rounding, as Python's round).</summary>
    public static GridCells Make(int length, int depths, int needleTokens, int questionTokens, int vocab, Random random)
    {
        int hayLength = length - needleTokens - questionTokens;
        Tensor Ids(int n) => tensor(Enumerable.Range(0, n).Select(_ => (long)random.Next(vocab)).ToArray(), [1, n]).DetachFromDisposeScope();
        var positions = Enumerable.Range(0, depths)
            .Select(d => depths > 1 ? (int)Math.Round((double)d / (depths - 1) * hayLength, MidpointRounding.ToEven) : 0).ToArray();
        return new GridCells(length, Ids(hayLength), Ids(needleTokens), Ids(questionTokens), positions);
    }
}
