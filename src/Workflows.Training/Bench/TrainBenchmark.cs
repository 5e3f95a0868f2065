using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using Workflows.Training.Data;
using Workflows.Training.Loop;
using Workflows.Training.Model;
using Workflows.Training.Native;
using static TorchSharp.torch;

namespace Workflows.Training.Bench;

/// <summary>What <c>wf bench train</c> measures on our side.</summary>
/// <param name="Contexts">Training contexts, measured in increasing order on one model (so it is built once).</param>
/// <param name="MicroBatch">Sequences per micro-batch.</param>
/// <param name="WarmupSteps">Untimed full steps (one micro-batch + an optimizer step each) per context: allocator, cuDNN/flash plans.</param>
/// <param name="MicroBatches">Timed micro-batches (forward + backward, gradients accumulating) per context.</param>
/// <param name="OptimizerSteps">Timed optimizer steps (gradient norm, clipping, AdamW, parameters rewritten) per context.</param>
/// <param name="BatchTokens">Tokens per optimizer step for the implied throughput (the paper: 4M).</param>
public sealed record TrainBenchSettings(
    LlamaConfig Model,
    IReadOnlyList<int> Contexts,
    int MicroBatch,
    int WarmupSteps,
    int MicroBatches,
    int OptimizerSteps,
    string Device,
    Precision Precision,
    bool ActivationCheckpointing,
    int LossChunkTokens,
    OptimizerPlacement Optimizer,
    long BatchTokens = 4_000_000,
    long Seed = 0);

/// <summary>One context's figures.</summary>
/// <param name="MicroBatchSeconds">Mean time of one timed micro-batch.</param>
/// <param name="TokensPerSecond">Micro-batch throughput: MicroBatch × Context / MicroBatchSeconds.</param>
/// <param name="OptimizerStepSeconds">Mean time of one optimizer step.</param>
/// <param name="ImpliedTokensPerSecond">Throughput of a whole step of BatchTokens: round(BatchTokens/Context) sequences in micro-batches plus one optimizer step.</param>
/// <param name="DeviceMemoryUsed">CUDA total − free after this context (the caching allocator's reserved memory plus the context; it only grows, so this is the peak so far).</param>
/// <param name="Error">Why this context failed (e.g. out of memory); the figures are then absent.</param>
/// <param name="PeakAllocated">Peak bytes allocated during this context, from the allocator (only with the cudaMallocAsync backend, see CudaRuntime.PoolAllocator).</param>
/// <param name="PeakReserved">Peak bytes the allocator reserved during this context (same condition).</param>
public sealed record TrainBenchContextResult(int Context, double? MicroBatchSeconds, double? TokensPerSecond, double? OptimizerStepSeconds,
    double? ImpliedTokensPerSecond, double? FirstLoss, double? LastLoss, long? DeviceMemoryUsed, long? DeviceMemoryTotal, string? Error,
    long? PeakAllocated = null, long? PeakReserved = null);

public static class TrainBenchmark
{
    /// <summary>
    /// Builds a randomly initialised model with the real <see cref="Trainer"/> (flat bf16/fp32 parameters, fp32
    /// master weights and gradient accumulation, the optimizer where the settings put it, block-by-block backward),
    /// then for each context: warm-up steps, timed micro-batches between two device synchronisations, timed
    /// optimizer steps. A context that fails (out of memory) is reported and the larger ones are skipped.
    /// </summary>
    public static IReadOnlyList<TrainBenchContextResult> Run(TrainBenchSettings s, TextWriter? log = null)
    {
        var contexts = s.Contexts.Order().ToList();
        if (contexts.Count == 0) throw new ArgumentException("no context to measure", nameof(s));
        manual_seed(s.Seed);
        var device = TorchDevice.Resolve(s.Device);
        var clock = Stopwatch.StartNew();
        var options = new TrainingOptions(Context: contexts[^1], BatchTokens: (long)s.MicroBatch * contexts[^1], MicroBatchSequences: s.MicroBatch,
            TotalSteps: int.MaxValue, LearningRate: 1e-5, Precision: s.Precision, ActivationCheckpointing: s.ActivationCheckpointing,
            Device: s.Device, Seed: s.Seed, LossChunkTokens: s.LossChunkTokens, Optimizer: s.Optimizer, CheckpointOnCancel: false);
        string scratch = Path.Combine(Path.GetTempPath(), $"wf-bench-train-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var results = new List<TrainBenchContextResult>();
        try
        {
            using var model = LlamaModel.CreateEmpty(s.Model);
            var noData = new InMemoryPackedSequenceSource([new int[contexts[^1] + 1]]);
            using var trainer = new Trainer(model, options, noData, scratch);
            log?.WriteLine($"ours: model built and placed in {clock.Elapsed.TotalSeconds:0.0} s ({trainer.Parameters.Count:N0} parameters, {trainer.Parameters.ParameterType}, optimizer state on the {(s.Optimizer == OptimizerPlacement.Host ? "host" : "device")})");
            string? failure = null;
            foreach (int context in contexts)
            {
                if (failure is not null) { results.Add(Failed(context, $"not run: a shorter context failed ({failure})")); continue; }
                try
                {
                    results.Add(Measure(trainer, s, context, device, log));
                }
                catch (ExternalException e)
                {
                    failure = FirstLine(e.Message);
                    results.Add(Failed(context, failure));
                    log?.WriteLine($"ours: context {context:N0} failed: {failure}");
                }
            }
            return results;
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    static TrainBenchContextResult Measure(Trainer trainer, TrainBenchSettings s, int context, Device device, TextWriter? log)
    {
        var sequences = BenchModels.RandomSequences(s.MicroBatch, context + 1, s.Model.VocabSize, (int)s.Seed + context);
        var losses = new List<double>();
        if (device.type == DeviceType.CUDA) CudaRuntime.ResetPoolPeaks();
        for (int i = 0; i < s.WarmupSteps; i++)
        {
            losses.Add(trainer.AccumulateGradients(sequences));
            trainer.ApplyOptimizerStep(1e-5, trainer.ClipCoefficient().Scale);
        }
        BenchModels.Synchronize(device);

        var clock = Stopwatch.StartNew();
        for (int i = 0; i < s.MicroBatches; i++) losses.Add(trainer.AccumulateGradients(sequences));
        BenchModels.Synchronize(device);
        double micro = clock.Elapsed.TotalSeconds / s.MicroBatches;

        clock.Restart();
        for (int i = 0; i < s.OptimizerSteps; i++) trainer.ApplyOptimizerStep(1e-5, trainer.ClipCoefficient().Scale);
        BenchModels.Synchronize(device);
        double optimizer = clock.Elapsed.TotalSeconds / Math.Max(1, s.OptimizerSteps);

        double tokensPerMicroBatch = (double)s.MicroBatch * context;
        int sequencesPerStep = (int)Math.Max(1, Math.Round((double)s.BatchTokens / context));
        int microBatchesPerStep = (sequencesPerStep + s.MicroBatch - 1) / s.MicroBatch;
        double implied = (double)sequencesPerStep * context / (microBatchesPerStep * micro + optimizer);
        var memory = device.type == DeviceType.CUDA ? CudaRuntime.MemoryInfo() : null;
        var peaks = device.type == DeviceType.CUDA ? CudaRuntime.PoolPeaks() : null;
        log?.WriteLine($"ours: context {context:N0}: {tokensPerMicroBatch / micro:N0} tokens/s per micro-batch ({micro:0.000} s), optimizer step {optimizer:0.000} s, {implied:N0} tokens/s at {s.BatchTokens:N0} tokens per step");
        return new TrainBenchContextResult(context, micro, tokensPerMicroBatch / micro, optimizer, implied, losses[0], losses[^1],
            memory?.Used, memory?.Total, null, peaks?.PeakAllocated, peaks?.PeakReserved);
    }

    static TrainBenchContextResult Failed(int context, string error) => new(context, null, null, null, null, null, null, null, null, error);

    static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
