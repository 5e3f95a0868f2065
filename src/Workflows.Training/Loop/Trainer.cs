using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using Workflows.Training.Data;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>One optimizer step's numbers (also one line of metrics.jsonl).</summary>
public sealed record StepMetrics(int Step, double Loss, double LearningRate, double GradNorm, long Tokens, double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;
}

/// <summary>What a progress bar shows after each step.</summary>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double TokensPerSecond, double LearningRate, double GradNorm, TimeSpan Elapsed, TimeSpan? Eta);

/// <summary>
/// The training loop: each step reads round(BatchTokens/Context) sequences, runs them in micro-batches whose
/// gradients accumulate (each micro-batch loss weighted by its share of the step's sequences, so the sum is the
/// mean over all the step's tokens), clips the global gradient norm, sets the step's learning rate and takes an
/// AdamW step. After every step a line goes to <c>metrics.jsonl</c>; every <c>CheckpointEvery</c> steps a
/// checkpoint goes to <c>checkpoints/</c>.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly LlamaModel model;
    readonly TrainingOptions options;
    readonly IPackedSequenceSource data;
    readonly Device device;
    readonly IWeightOptimizer optimizer;
    readonly string outputDirectory;

    public Trainer(LlamaModel model, TrainingOptions options, IPackedSequenceSource data, string outputDirectory)
    {
        this.options = options.Validated();
        if (data.Context != options.Context)
            throw new ArgumentException($"the data has context {data.Context}, the run expects {options.Context}", nameof(data));
        this.model = model;
        this.data = data;
        this.outputDirectory = outputDirectory;
        device = TorchDevice.Resolve(options.Device);
        model.to(device);
        model.ComputeType = options.Precision == Precision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        model.CheckpointBlocks = options.ActivationCheckpointing;
        model.LossChunkTokens = options.LossChunkTokens;
        model.train();
        optimizer = IWeightOptimizer.Create(options.Optimizer, model, options);
        Directory.CreateDirectory(outputDirectory);
    }

    public int Step { get; private set; }
    public long TokensSeen { get; private set; }
    public string CheckpointsDirectory => Path.Combine(outputDirectory, "checkpoints");
    public string MetricsPath => Path.Combine(outputDirectory, "metrics.jsonl");

    /// <summary>Continues from the newest complete checkpoint, if any; returns its folder.</summary>
    public string? ResumeFromNewestCheckpoint()
    {
        string? newest = TrainingCheckpoints.FindNewestComplete(CheckpointsDirectory);
        if (newest is null) return null;
        var state = TrainingCheckpoints.Restore(newest, model, optimizer);
        Step = state.Step;
        TokensSeen = state.TokensSeen;
        data.Seek(state.DataPosition);
        return newest;
    }

    public string SaveCheckpoint() =>
        TrainingCheckpoints.Save(CheckpointsDirectory, new TrainerState(Step, data.Position, TokensSeen), model, optimizer);

    /// <summary>
    /// Runs steps until <c>TotalSteps</c> or cancellation (checked between steps). Returns the metrics of the
    /// steps run by this call.
    /// </summary>
    public IReadOnlyList<StepMetrics> Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        var run = new List<StepMetrics>();
        var clock = Stopwatch.StartNew();
        int lastCheckpoint = Step;
        while (Step < options.TotalSteps)
        {
            if (cancellation.IsCancellationRequested)
            {
                if (options.CheckpointOnCancel && Step > lastCheckpoint) SaveCheckpoint();
                return run;
            }
            var metrics = TrainStep();
            run.Add(metrics);
            AppendMetrics(metrics);
            if (options.CheckpointEvery > 0 && Step % options.CheckpointEvery == 0) { SaveCheckpoint(); lastCheckpoint = Step; }

            double perStep = clock.Elapsed.TotalSeconds / run.Count;
            progress?.Report(new TrainingProgress(Step, options.TotalSteps, metrics.Loss, metrics.TokensPerSecond,
                metrics.LearningRate, metrics.GradNorm, clock.Elapsed, TimeSpan.FromSeconds(perStep * (options.TotalSteps - Step))));
        }
        return run;
    }

    /// <summary>One optimizer step over the next SequencesPerStep sequences of the source.</summary>
    public StepMetrics TrainStep()
    {
        var clock = Stopwatch.StartNew();
        var sequences = new int[options.SequencesPerStep][];
        for (int i = 0; i < sequences.Length; i++) sequences[i] = data.Next();

        int step = Step + 1;
        double lr = options.LearningRateAt(step);
        optimizer.ZeroGradients();
        double loss = AccumulateGradients(model, sequences, options.MicroBatchSequences, device, zeroGradients: false);
        double gradNorm = optimizer.ClipGradientNorm(options.MaxGradNorm > 0 ? options.MaxGradNorm : double.PositiveInfinity);
        optimizer.Step(lr);

        Step = step;
        long tokens = (long)sequences.Length * options.Context;
        TokensSeen += tokens;
        return new StepMetrics(step, loss, lr, gradNorm, tokens, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Zeroes the gradients, then accumulates the gradient of the mean next-token loss over all
    /// <paramref name="sequences"/> (each Context+1 tokens), <paramref name="microBatchSequences"/> at a time.
    /// Returns that mean loss.
    /// </summary>
    public static double AccumulateGradients(LlamaModel model, IReadOnlyList<int[]> sequences, int microBatchSequences, Device device,
        bool zeroGradients = true)
    {
        if (zeroGradients) model.zero_grad();
        double total = 0;
        for (int start = 0; start < sequences.Count; start += microBatchSequences)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(microBatchSequences, sequences.Count - start);
            var batch = ToTensor(sequences, start, count, device);
            long context = batch.shape[1] - 1;
            var inputs = batch.narrow(1, 0, context);
            var targets = batch.narrow(1, 1, context);
            var loss = model.Loss(inputs, targets) * ((double)count / sequences.Count);
            loss.backward();
            total += loss.item<float>();
        }
        return total;
    }

    static Tensor ToTensor(IReadOnlyList<int[]> sequences, int start, int count, Device device)
    {
        int width = sequences[start].Length;
        var flat = new long[(long)count * width];
        for (int i = 0; i < count; i++)
            for (int j = 0; j < width; j++) flat[(long)i * width + j] = sequences[start + i][j];
        return tensor(flat, [count, width], ScalarType.Int64).to(device);
    }

    void AppendMetrics(StepMetrics m)
    {
        var line = new JsonObject
        {
            ["step"] = m.Step,
            ["loss"] = m.Loss,
            ["lr"] = m.LearningRate,
            ["grad_norm"] = m.GradNorm,
            ["tokens"] = m.Tokens,
            ["tokens_seen"] = TokensSeen,
            ["tokens_per_s"] = Math.Round(m.TokensPerSecond, 1),
            ["step_s"] = Math.Round(m.Seconds, 4),
            ["time"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
        File.AppendAllText(MetricsPath, line.ToJsonString() + "\n");
    }

    public void Dispose() => optimizer.Dispose();
}
