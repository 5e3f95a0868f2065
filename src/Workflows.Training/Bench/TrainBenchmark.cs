using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using Workflows.Training.Data;
using Workflows.Training.Distributed;
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
/// <param name="ZeroStage">On N ranks: 2 (gradients and optimizer state sharded) or 3 (the parameters too), see <see cref="TrainingOptions.ZeroStage"/>.</param>
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
    long Seed = 0,
    int ZeroStage = 2);

/// <summary>One context's figures (of this process: on N ranks, one rank's).</summary>
/// <param name="MicroBatchSeconds">Mean time of one timed micro-batch (on N ranks: of one round, each rank running one micro-batch).</param>
/// <param name="TokensPerSecond">Micro-batch throughput of this process: <see cref="Tokens"/> / (timed micro-batches × MicroBatchSeconds).</param>
/// <param name="OptimizerStepSeconds">Mean time of one optimizer step (on N ranks it includes the gradient norm's
/// all-reduce and the all-gather of the updated parameter shards).</param>
/// <param name="ImpliedTokensPerSecond">Throughput of a whole step of BatchTokens (of the whole group, were every rank
/// this fast): round(BatchTokens/Context) sequences in micro-batches, ceil(micro-batches / Ranks) rounds, plus one
/// optimizer step.</param>
/// <param name="DeviceMemoryUsed">CUDA total − free after this context (the caching allocator's reserved memory plus the context; it only grows, so this is the peak so far).</param>
/// <param name="Error">Why this context failed (e.g. out of memory); the figures are then absent.</param>
/// <param name="PeakAllocated">Peak bytes allocated during this context, from the allocator (only with the cudaMallocAsync backend, see CudaRuntime.PoolAllocator).</param>
/// <param name="PeakReserved">Peak bytes the allocator reserved during this context (same condition).</param>
/// <param name="Tokens">Tokens this process ran forward and backward on in the timed micro-batches, counted by the
/// trainer (<see cref="Trainer.LocalTokens"/>): on N ranks, its share of the rounds' global batch.</param>
/// <param name="Ranks">The data-parallel group's size (1: one process).</param>
public sealed record TrainBenchContextResult(int Context, double? MicroBatchSeconds, double? TokensPerSecond, double? OptimizerStepSeconds,
    double? ImpliedTokensPerSecond, double? FirstLoss, double? LastLoss, long? DeviceMemoryUsed, long? DeviceMemoryTotal, string? Error,
    long? PeakAllocated = null, long? PeakReserved = null, long? Tokens = null, int Ranks = 1);

public static class TrainBenchmark
{
    /// <summary>
    /// Builds a randomly initialised model with the real <see cref="Trainer"/> (flat bf16/fp32 parameters, fp32
    /// master weights and gradient accumulation, the optimizer where the settings put it, block-by-block backward),
    /// then for each context: warm-up steps, timed micro-batches between two device synchronisations, timed
    /// optimizer steps. A context that fails (out of memory) is reported and the larger ones are skipped.
    /// <para>
    /// With a <paramref name="group"/> of N ranks (every rank calls this with the same settings) the trainer is the
    /// data-parallel one (ZeRO stage 2 or 3 as the settings say, see <see cref="Trainer"/>): each timed round hands the trainer N
    /// micro-batches and rank r runs micro-batch r, as in training; <paramref name="measured"/> sees each context's
    /// result as soon as it is known (a rank writes it out, so a group that fails later still reports it).
    /// </para>
    /// </summary>
    public static IReadOnlyList<TrainBenchContextResult> Run(TrainBenchSettings s, TextWriter? log = null, ICollectives? group = null,
        Action<TrainBenchContextResult>? measured = null)
    {
        var contexts = s.Contexts.Order().ToList();
        if (contexts.Count == 0) throw new ArgumentException("no context to measure", nameof(s));
        manual_seed(s.Seed);
        var device = TorchDevice.Resolve(s.Device);
        var clock = Stopwatch.StartNew();
        int ranks = group?.WorldSize ?? 1;
        var options = new TrainingOptions(Context: contexts[^1], BatchTokens: (long)ranks * s.MicroBatch * contexts[^1], MicroBatchSequences: s.MicroBatch,
            TotalSteps: int.MaxValue, LearningRate: 1e-5, Precision: s.Precision, ActivationCheckpointing: s.ActivationCheckpointing,
            Device: s.Device, Seed: s.Seed, LossChunkTokens: s.LossChunkTokens, Optimizer: s.Optimizer, CheckpointOnCancel: false, ZeroStage: s.ZeroStage);
        string scratch = Path.Combine(Path.GetTempPath(), $"wf-bench-train-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var results = new List<TrainBenchContextResult>();
        try
        {
            using var model = LlamaModel.CreateEmpty(s.Model);
            var noData = new InMemoryPackedSequenceSource([new int[contexts[^1] + 1]]);
            using var trainer = new Trainer(model, options, noData, scratch, group: group);
            log?.WriteLine($"ours: model built and placed in {clock.Elapsed.TotalSeconds:0.0} s ({trainer.Parameters.Count:N0} parameters, {trainer.Parameters.ParameterType}, optimizer state on the {(s.Optimizer == OptimizerPlacement.Host ? "host" : "device")}){(trainer.Gathering is null ? "" : $"; ZeRO stage 3: this rank keeps {trainer.Parameters.Weights.numel():N0} of them")}");
            string? failure = null;
            foreach (int context in contexts)
            {
                TrainBenchContextResult result;
                if (failure is not null)
                {
                    result = Failed(context, $"not run: a shorter context failed ({failure})");
                }
                else
                {
                    try
                    {
                        result = Measure(trainer, s, context, device, log);
                    }
                    catch (ExternalException e)
                    {
                        failure = FirstLine(e.Message);
                        result = Failed(context, failure);
                        log?.WriteLine($"ours: context {context:N0} failed: {failure}");
                    }
                }
                results.Add(result);
                measured?.Invoke(result);
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
        // One round: a micro-batch for each rank (rank r runs micro-batch r, the trainer's own rule).
        int ranks = trainer.Group.WorldSize;
        var sequences = BenchModels.RandomSequences(ranks * s.MicroBatch, context + 1, s.Model.VocabSize, (int)s.Seed + context);
        var losses = new List<double>();
        if (device.type == DeviceType.CUDA) CudaRuntime.ResetPoolPeaks();
        for (int i = 0; i < s.WarmupSteps; i++)
        {
            losses.Add(trainer.AccumulateGradients(sequences));
            trainer.ApplyOptimizerStep(1e-5, trainer.ClipCoefficient().Scale);
        }
        BenchModels.Synchronize(device);

        long tokensBefore = trainer.LocalTokens;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < s.MicroBatches; i++) losses.Add(trainer.AccumulateGradients(sequences));
        BenchModels.Synchronize(device);
        double timed = clock.Elapsed.TotalSeconds;
        long tokens = trainer.LocalTokens - tokensBefore;
        double micro = timed / s.MicroBatches;

        clock.Restart();
        for (int i = 0; i < s.OptimizerSteps; i++) trainer.ApplyOptimizerStep(1e-5, trainer.ClipCoefficient().Scale);
        BenchModels.Synchronize(device);
        double optimizer = clock.Elapsed.TotalSeconds / Math.Max(1, s.OptimizerSteps);

        double implied = ImpliedTokensPerSecond(s, context, ranks, micro, optimizer);
        var memory = device.type == DeviceType.CUDA ? CudaRuntime.MemoryInfo() : null;
        var peaks = device.type == DeviceType.CUDA ? CudaRuntime.PoolPeaks() : null;
        log?.WriteLine($"ours: context {context:N0}: {tokens / timed:N0} tokens/s per micro-batch ({micro:0.000} s), optimizer step {optimizer:0.000} s, {implied:N0} tokens/s at {s.BatchTokens:N0} tokens per step{(ranks > 1 ? $" on {ranks} ranks" : "")}");
        return new TrainBenchContextResult(context, micro, tokens / timed, optimizer, implied, losses[0], losses[^1],
            memory?.Used, memory?.Total, null, peaks?.PeakAllocated, peaks?.PeakReserved, tokens, ranks);
    }

    /// <summary>
    /// Tokens per second of a whole optimizer step of <see cref="TrainBenchSettings.BatchTokens"/> on
    /// <paramref name="ranks"/> ranks: round(BatchTokens / context) sequences make ceil(sequences / MicroBatch)
    /// micro-batches, run ceil(micro-batches / ranks) rounds of <paramref name="roundSeconds"/> each (rank r takes
    /// micro-batches r, r+N, …), then one optimizer step.
    /// </summary>
    public static double ImpliedTokensPerSecond(TrainBenchSettings s, int context, int ranks, double roundSeconds, double optimizerSeconds)
    {
        int sequencesPerStep = (int)Math.Max(1, Math.Round((double)s.BatchTokens / context));
        int microBatchesPerStep = (sequencesPerStep + s.MicroBatch - 1) / s.MicroBatch;
        int rounds = (microBatchesPerStep + ranks - 1) / ranks;
        return (double)sequencesPerStep * context / (rounds * roundSeconds + optimizerSeconds);
    }

    static TrainBenchContextResult Failed(int context, string error) => new(context, null, null, null, null, null, null, null, null, error);

    static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
