using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
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

/// <summary>The loss or the gradient norm stopped being a finite number: the run diverged and the step was not applied.</summary>
public sealed class TrainingDivergedException(int step, double loss, double gradNorm)
    : Exception($"step {step}: loss {loss.ToString(CultureInfo.InvariantCulture)}, gradient norm {gradNorm.ToString(CultureInfo.InvariantCulture)}: training diverged (the step was not applied; resume from the last checkpoint with a lower learning rate)");

/// <summary>
/// The training loop. Memory has one owner per kind:
/// <list type="bullet">
/// <item><see cref="FlatParameters"/>: the parameters (bf16 or fp32) and one float32 gradient buffer, on the device;</item>
/// <item><see cref="MasterAdamW"/>: fp32 master weights and AdamW moments, on the device or in host memory
/// (<see cref="TrainingOptions.Optimizer"/>);</item>
/// <item><see cref="BlockwiseBackprop"/>: one micro-batch's activations, freed block by block in the backward pass.</item>
/// </list>
/// Each step reads round(BatchTokens/Context) sequences and runs them in micro-batches whose gradients accumulate
/// in float32 (each micro-batch weighted by its share of the step's sequences, so the sum is the gradient of the mean
/// over all the step's tokens), clips the global gradient norm, and takes an AdamW step at the step's learning rate.
/// After every step one line goes to <c>metrics.jsonl</c>; every <c>CheckpointEvery</c> steps a checkpoint goes to
/// <c>checkpoints/</c> (and to the checkpoint store, when there is one).
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly LlamaModel model;
    readonly TrainingOptions options;
    readonly IPackedSequenceSource data;
    readonly Device device;
    readonly FlatParameters flat;
    readonly MasterAdamW optimizer;
    readonly BlockwiseBackprop pass;
    readonly string outputDirectory;

    /// <param name="baseModelDirectory">
    /// For a model built without storage (<see cref="LlamaModel.CreateEmpty"/>): a HuggingFace folder whose weights
    /// become the fp32 master weights (exactly, whatever their stored type) and, rounded, the parameters; null = HF's
    /// random init, drawn on the training device from torch's generator. Ignored for a model that has weights.
    /// </param>
    public Trainer(LlamaModel model, TrainingOptions options, IPackedSequenceSource data, string outputDirectory, string? baseModelDirectory = null)
    {
        this.options = options.Validated();
        if (data.Context != options.Context)
            throw new ArgumentException($"the data has context {data.Context}, the run expects {options.Context}", nameof(data));
        this.model = model;
        this.data = data;
        this.outputDirectory = outputDirectory;
        device = TorchDevice.Resolve(options.Device);
        var parameterType = options.Precision == Precision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;

        long count = model.parameters().Sum(p => p.numel());
        bool empty = model.IsEmpty;
        optimizer = MasterAdamW.Create(options.Optimizer, 0, count, options.AdamW, device);
        try
        {
            // The master weights are copied from the float32 parameters before they become bf16, so they are exact.
            flat = new FlatParameters(model, parameterType, device, (slot, p) => optimizer.SetMaster(slot.Offset, p));
            if (empty) FillEmptyModel(model, baseModelDirectory);
        }
        catch
        {
            optimizer.Dispose();
            flat?.Dispose();
            throw;
        }
        model.ComputeType = parameterType;
        model.LossChunkTokens = options.LossChunkTokens;
        model.train();
        pass = new BlockwiseBackprop(model, flat, options.ActivationCheckpointing, options.LossChunkTokens);
        Directory.CreateDirectory(outputDirectory);
    }

    // A model built without storage: its flat buffers are filled here, master weights first where they are known exactly.
    void FillEmptyModel(LlamaModel model, string? baseModelDirectory)
    {
        using var _ = no_grad();
        if (baseModelDirectory is null)
        {
            model.InitializeWeights();
            foreach (var (_, p, slot) in flat.Parameters) optimizer.SetMaster(slot.Offset, p);
            return;
        }
        var slots = flat.Parameters.ToDictionary(e => e.Name, e => e.Slot);
        var saved = slots.Where(e => !(model.Config.TieWordEmbeddings && e.Key == "lm_head.weight")).ToDictionary(e => e.Key, e => e.Value.Shape);
        Weights.HuggingFaceCheckpoint.Read(baseModelDirectory, saved, (name, loaded) => optimizer.SetMaster(slots[name].Offset, loaded));
        optimizer.CopyMasterTo(flat.Weights);
    }

    public int Step { get; private set; }
    public long TokensSeen { get; private set; }
    public string CheckpointsDirectory => Path.Combine(outputDirectory, "checkpoints");
    public string MetricsPath => Path.Combine(outputDirectory, "metrics.jsonl");
    public FlatParameters Parameters => flat;
    public MasterAdamW Optimizer => optimizer;
    public LlamaModel Model => model;

    /// <summary>Called with each checkpoint folder once it is complete on disk (e.g. to upload it).</summary>
    public Action<int, string>? CheckpointSaved { get; set; }

    /// <summary>
    /// Apply <see cref="TrainingOptions.KeepCheckpoints"/> to the local folder after each save (default). Off when a
    /// <see cref="CheckpointUploader"/> owns retention: it deletes a local checkpoint only once it is uploaded.
    /// </summary>
    public bool PruneLocally { get; set; } = true;

    /// <summary>
    /// Continues from the newest complete checkpoint in <see cref="CheckpointsDirectory"/>, if any; returns its
    /// folder. <c>metrics.jsonl</c> keeps one line per step up to the checkpoint (lines of steps that were run after
    /// it and are about to be run again are dropped).
    /// </summary>
    public string? ResumeFromNewestCheckpoint()
    {
        string? newest = TrainingCheckpoints.FindNewestComplete(CheckpointsDirectory);
        if (newest is null) return null;
        var state = TrainingCheckpoints.Restore(newest, model, flat, optimizer);
        Step = state.Step;
        TokensSeen = state.TokensSeen;
        data.Seek(state.DataPosition);
        // On an empty disk (another machine resuming from the checkpoint store) the history comes with the checkpoint.
        string carried = Path.Combine(newest, TrainingCheckpoints.MetricsFile);
        if (!File.Exists(MetricsPath) && File.Exists(carried)) File.Copy(carried, MetricsPath);
        TrimMetrics(Step);
        return newest;
    }

    public string SaveCheckpoint()
    {
        string folder = TrainingCheckpoints.Save(CheckpointsDirectory, new TrainerState(Step, data.Position, TokensSeen), model, flat, optimizer, MetricsPath);
        if (PruneLocally && options.KeepCheckpoints > 0) TrainingCheckpoints.Prune(CheckpointsDirectory, options.KeepCheckpoints);
        CheckpointSaved?.Invoke(Step, folder);
        return folder;
    }

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
        double loss = AccumulateGradients(sequences);
        var (gradNorm, scale) = ClipCoefficient();
        if (!double.IsFinite(loss) || !double.IsFinite(gradNorm)) throw new TrainingDivergedException(step, loss, gradNorm);
        ApplyOptimizerStep(lr, scale);

        Step = step;
        long tokens = (long)sequences.Length * options.Context;
        TokensSeen += tokens;
        return new StepMetrics(step, loss, lr, gradNorm, tokens, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Zeroes the gradients, then accumulates the gradient of the mean next-token loss over all
    /// <paramref name="sequences"/> (each Context+1 tokens), <see cref="TrainingOptions.MicroBatchSequences"/> at a
    /// time. Returns that mean loss (read from the device once, after the last micro-batch).
    /// </summary>
    public double AccumulateGradients(IReadOnlyList<int[]> sequences)
    {
        flat.ZeroGradients();
        using var total = zeros([], ScalarType.Float32, device);
        for (int start = 0; start < sequences.Count; start += options.MicroBatchSequences)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(options.MicroBatchSequences, sequences.Count - start);
            var batch = ToTensor(sequences, start, count, device);     // [count, T+1]
            long context = batch.shape[1] - 1;
            using var loss = pass.Accumulate(batch.narrow(1, 0, context), batch.narrow(1, 1, context), (double)count / sequences.Count);
            total.add_(loss);
        }
        return total.item<float>();
    }

    /// <summary>The global L2 norm of the accumulated gradients and the factor that clips it to MaxGradNorm (PyTorch's rule: max/(norm+1e-6) when below 1).</summary>
    public (double Norm, double Scale) ClipCoefficient()
    {
        using var norm = flat.Gradients.norm();
        double value = norm.item<float>();
        double max = options.MaxGradNorm > 0 ? options.MaxGradNorm : double.PositiveInfinity;
        double coefficient = max / (value + 1e-6);
        return (value, coefficient < 1 ? coefficient : 1.0);
    }

    /// <summary>AdamW on the master weights with the accumulated gradients times <paramref name="gradientScale"/>; the parameters are rewritten.</summary>
    public void ApplyOptimizerStep(double learningRate, double gradientScale) =>
        optimizer.Step(learningRate, gradientScale, flat.Gradients, flat.Weights);

    static Tensor ToTensor(IReadOnlyList<int[]> sequences, int start, int count, Device device)
    {
        int width = sequences[start].Length;
        var flatIds = new long[(long)count * width];
        for (int i = 0; i < count; i++)
            for (int j = 0; j < width; j++) flatIds[(long)i * width + j] = sequences[start + i][j];
        using var host = tensor(flatIds, [count, width], ScalarType.Int64);
        return host.to(device);
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

    // Keeps the lines of steps 1..step, once each (the first of duplicates), in order; a torn last line is dropped.
    void TrimMetrics(int step)
    {
        if (!File.Exists(MetricsPath)) return;
        var kept = new SortedDictionary<int, string>();
        foreach (var line in File.ReadLines(MetricsPath))
        {
            int? s = null;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("step", out var p) && p.TryGetInt32(out var v)) s = v;
            }
            catch (JsonException)
            {
            }
            if (s is { } value && value <= step) kept.TryAdd(value, line);
        }
        string temp = MetricsPath + ".tmp";
        File.WriteAllLines(temp, kept.Values);
        File.Move(temp, MetricsPath, overwrite: true);
    }

    public void Dispose()
    {
        flat.Dispose();
        optimizer.Dispose();
    }
}
