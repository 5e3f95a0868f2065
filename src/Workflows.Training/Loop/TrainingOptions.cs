namespace Workflows.Training.Loop;

/// <summary>Compute precision. Weights and optimizer state are float32 in both.</summary>
public enum LearningRateSchedule
{
    Constant,
    Cosine,
    Linear,
}

/// <summary>Which AdamW implementation steps the weights (same update rule; see FlatAdamW for the difference).</summary>
public enum OptimizerKind
{
    /// <summary>TorchSharp's optim.AdamW: a dozen tensor ops per parameter tensor per step.</summary>
    TorchSharpAdamW,
    /// <summary>Weights, gradients and AdamW state in flat buffers: a dozen ops per step in total.</summary>
    FlatAdamW,
}

public enum Precision
{
    /// <summary>Everything in float32 (the CPU default).</summary>
    Fp32,
    /// <summary>Matmuls and attention in bfloat16 on float32 master weights (the GPU path; see LlamaModel).</summary>
    Bf16,
}

/// <summary>
/// How to train. Sizes are in tokens and sequences of <see cref="TrainingOptions.Context"/> tokens; the paper's
/// recipe is <c>Context = 81920, BatchTokens = 4M, LearningRate = 2e-5</c>, constant, no warmup.
/// </summary>
/// <param name="Context">Training context T (sequences from the source are T+1 tokens).</param>
/// <param name="BatchTokens">Tokens per optimizer step; the step uses round(BatchTokens / Context) sequences (at least 1).</param>
/// <param name="MicroBatchSequences">Sequences per forward/backward pass; gradients of the micro-batches are accumulated.</param>
/// <param name="TotalSteps">Optimizer steps of the whole run.</param>
/// <param name="LearningRate">Peak (constant) learning rate.</param>
/// <param name="WarmupSteps">Linear warmup from lr/WarmupSteps at step 1 to lr at step WarmupSteps; 0 = none.</param>
/// <param name="MaxGradNorm">Clip the global L2 norm of the gradients to this; 0 or less = no clipping (the norm is still logged).</param>
/// <param name="CheckpointEvery">Save a resumable checkpoint every this many steps; 0 = only at the end and on cancellation.</param>
/// <param name="CheckpointOnCancel">Save a checkpoint when the run is cancelled (SIGTERM) between steps.</param>
/// <param name="Device">"cpu", "cuda" or "cuda:N".</param>
/// <param name="Seed">Seed of torch's generator (weight init when not loading a base model).</param>
/// <param name="LossChunkTokens">Positions per chunk of the LM head + cross-entropy when a micro-batch has more (see ChunkedCrossEntropy); 0 = all logits at once.</param>
/// <param name="Optimizer">AdamW over the parameters one by one (TorchSharp's) or over one flat buffer (see FlatAdamW).</param>
public sealed record TrainingOptions(
    int Context,
    long BatchTokens,
    int MicroBatchSequences,
    int TotalSteps,
    double LearningRate,
    int WarmupSteps = 0,
    double Beta1 = 0.9,
    double Beta2 = 0.95,
    double Epsilon = 1e-8,
    double WeightDecay = 0.0,
    double MaxGradNorm = 1.0,
    Precision Precision = Precision.Fp32,
    bool ActivationCheckpointing = false,
    int CheckpointEvery = 0,
    bool CheckpointOnCancel = true,
    string Device = "cpu",
    long Seed = 0,
    LearningRateSchedule Schedule = LearningRateSchedule.Constant,
    int LossChunkTokens = 8192,
    OptimizerKind Optimizer = OptimizerKind.TorchSharpAdamW)
{
    public int SequencesPerStep => (int)Math.Max(1, Math.Round((double)BatchTokens / Context));
    public int MicroBatchesPerStep => (SequencesPerStep + MicroBatchSequences - 1) / MicroBatchSequences;
    public long TokensPerStep => (long)SequencesPerStep * Context;

    /// <summary>
    /// Learning rate of (1-based) <paramref name="step"/>: linear warmup, then constant (the paper), or a cosine or
    /// linear decay from the peak to 0 at <see cref="TotalSteps"/>.
    /// </summary>
    public double LearningRateAt(int step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps)
        {
            return LearningRate * step / WarmupSteps;
        }

        var decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        var progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        return Schedule switch
        {
            LearningRateSchedule.Cosine => LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            LearningRateSchedule.Linear => LearningRate * (1 - progress),
            _ => LearningRate,
        };
    }

    public TrainingOptions Validated()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Context, 1, nameof(Context));
        ArgumentOutOfRangeException.ThrowIfLessThan(MicroBatchSequences, 1, nameof(MicroBatchSequences));
        ArgumentOutOfRangeException.ThrowIfLessThan(TotalSteps, 1, nameof(TotalSteps));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(LearningRate, nameof(LearningRate));
        ArgumentOutOfRangeException.ThrowIfNegative(WarmupSteps, nameof(WarmupSteps));
        ArgumentOutOfRangeException.ThrowIfNegative(CheckpointEvery, nameof(CheckpointEvery));
        ArgumentOutOfRangeException.ThrowIfNegative(LossChunkTokens, nameof(LossChunkTokens));
        return this;
    }
}
