namespace Workflows.Training.Loop;

public enum LearningRateSchedule
{
    Constant,
    Cosine,
    Linear,
}

/// <summary>The parameters' type. Gradients accumulate in float32 and the optimizer keeps float32 master weights in both.</summary>
public enum Precision
{
    /// <summary>Everything in float32 (the CPU default).</summary>
    Fp32,
    /// <summary>bf16 parameters: every matmul, attention and the residual stream in bf16, norms and the softmax in float32 (the GPU path).</summary>
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
/// <param name="Optimizer">Where the fp32 master weights and AdamW moments live: on the device, or in host memory with the update on the CPU (see MasterAdamW).</param>
/// <param name="KeepCheckpoints">Complete checkpoints kept (the newest); older ones are deleted, locally and in the checkpoint store. 0 = keep all.</param>
/// <param name="ZeroStage">
/// Sharding across data-parallel ranks (ignored on one process): 2 = gradients and optimizer state sharded, every rank
/// keeps all parameters; 3 = the parameters too, each group gathered just before it is used (needs activation checkpointing).
/// </param>
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
    OptimizerPlacement Optimizer = OptimizerPlacement.Device,
    int KeepCheckpoints = 0,
    int ZeroStage = 2)
{
    public int SequencesPerStep => (int)Math.Max(1, Math.Round((double)BatchTokens / Context));
    public int MicroBatchesPerStep => (SequencesPerStep + MicroBatchSequences - 1) / MicroBatchSequences;
    public long TokensPerStep => (long)SequencesPerStep * Context;
    public AdamWSettings AdamW => new(Beta1, Beta2, Epsilon, WeightDecay);

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
        ArgumentOutOfRangeException.ThrowIfNegative(KeepCheckpoints, nameof(KeepCheckpoints));
        if (ZeroStage is not (2 or 3)) throw new ArgumentOutOfRangeException(nameof(ZeroStage), ZeroStage, "ZeRO stage 2 or 3");
        if (ZeroStage == 3 && !ActivationCheckpointing)
            throw new ArgumentException("ZeRO stage 3 needs activation checkpointing (training.activation_checkpointing: true)", nameof(ZeroStage));
        return this;
    }
}
