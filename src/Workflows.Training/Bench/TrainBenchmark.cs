using System.Diagnostics;
using Workflows.Training.Data;
using Workflows.Training.Loop;
using Workflows.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training.Bench;

/// <summary>One training-speed measurement of our model (what <c>wf bench train</c> runs on our side).</summary>
/// <param name="MicroBatch">Sequences per step (one micro-batch per optimizer step).</param>
/// <param name="WarmupSteps">Untimed steps first (allocator warm-up, cuBLAS/flash autotuning, JIT).</param>
/// <param name="Steps">Timed steps.</param>
public sealed record TrainBenchSettings(
    LlamaConfig Model,
    int Context,
    int MicroBatch,
    int WarmupSteps,
    int Steps,
    string Device,
    Precision Precision,
    bool ActivationCheckpointing,
    int LossChunkTokens,
    OptimizerKind Optimizer,
    long Seed = 0);

/// <param name="DeviceMemoryUsed">CUDA total − free after the timed steps (see <see cref="DeviceMemory"/>); null on CPU.</param>
public sealed record TrainBenchResult(double TokensPerSecond, double StepSeconds, double FirstLoss, double LastLoss,
    long? DeviceMemoryUsed, long? DeviceMemoryTotal);

public static class TrainBenchmark
{
    /// <summary>
    /// Trains a fresh randomly initialised model with the real <see cref="Trainer"/> (AdamW, clipping, bf16 and
    /// checkpointing as configured) on random token ids: warm-up steps, then timed steps between two device
    /// synchronisations. Tokens/s = steps × micro-batch × context / elapsed.
    /// </summary>
    public static TrainBenchResult Run(TrainBenchSettings s)
    {
        manual_seed(s.Seed);
        var sequences = BenchModels.RandomSequences(s.MicroBatch, s.Context + 1, s.Model.VocabSize, (int)s.Seed);
        var options = new TrainingOptions(Context: s.Context, BatchTokens: (long)s.MicroBatch * s.Context, MicroBatchSequences: s.MicroBatch,
            TotalSteps: s.WarmupSteps + s.Steps, LearningRate: 1e-5, Precision: s.Precision, ActivationCheckpointing: s.ActivationCheckpointing,
            Device: s.Device, Seed: s.Seed, LossChunkTokens: s.LossChunkTokens, Optimizer: s.Optimizer, CheckpointOnCancel: false);
        string scratch = Path.Combine(Path.GetTempPath(), $"wf-bench-train-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var model = new LlamaModel(s.Model);
            using var trainer = new Trainer(model, options, new InMemoryPackedSequenceSource(sequences), scratch);
            var device = TorchDevice.Resolve(s.Device);
            var losses = new List<double>();
            for (int i = 0; i < s.WarmupSteps; i++) losses.Add(trainer.TrainStep().Loss);
            BenchModels.Synchronize(device);
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < s.Steps; i++) losses.Add(trainer.TrainStep().Loss);
            BenchModels.Synchronize(device);
            double seconds = clock.Elapsed.TotalSeconds;
            var memory = device.type == DeviceType.CUDA ? DeviceMemory.Read() : null;
            return new TrainBenchResult((double)s.Steps * s.MicroBatch * s.Context / seconds, seconds / s.Steps,
                losses[0], losses[^1], memory?.Used, memory?.Total);
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }
}
