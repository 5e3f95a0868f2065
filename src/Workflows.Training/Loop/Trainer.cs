using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Workflows.Training.Data;
using Workflows.Training.Distributed;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>One optimizer step's numbers (also one line of metrics.jsonl).</summary>
public sealed record StepMetrics(int Step, double Loss, double LearningRate, double GradNorm, long Tokens, double Seconds)
{
    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;
}

/// <summary>What a progress bar shows after each step.</summary>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double TokensPerSecond, double LearningRate, double GradNorm, TimeSpan Elapsed, TimeSpan? Eta)
{
    /// <summary>The one-line status a GPU job reports (in-process, or rank 0 of <c>wf gpu-agent --gpus N</c>).</summary>
    public string StatusLine() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"step {Step}/{TotalSteps} loss {Loss:0.0000} {TokensPerSecond:N0} tokens/s");
}

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
    readonly GradientShards gradients;
    readonly MasterAdamW optimizer;
    readonly BlockwiseBackprop pass;
    readonly ParameterGathering? gathering;
    readonly ICollectives group;
    readonly string outputDirectory;

    /// <param name="baseModelDirectory">
    /// For a model built without storage (<see cref="LlamaModel.CreateEmpty"/>): a HuggingFace folder whose weights
    /// become the fp32 master weights (exactly, whatever their stored type) and, rounded, the parameters; null = HF's
    /// random init, drawn on the training device from torch's generator. Ignored for a model that has weights.
    /// </param>
    /// <param name="group">
    /// The data-parallel group this process is a rank of (null: one process). Every rank reads the same sequences;
    /// rank r runs micro-batches r, r+N, … of each step, so a step sees the same data whatever N. Gradients and the
    /// optimizer state are sharded (ZeRO stage 2, see <see cref="GradientShards"/>); the updated parameter shards
    /// are all-gathered after each step. With <see cref="TrainingOptions.ZeroStage"/> 3 each rank keeps only its
    /// shard of the parameters too, and every group is gathered just in time (<see cref="ParameterGathering"/>).
    /// </param>
    public Trainer(LlamaModel model, TrainingOptions options, IPackedSequenceSource data, string outputDirectory, string? baseModelDirectory = null,
        ICollectives? group = null)
    {
        this.group = group ?? SingleProcess.Instance;
        this.options = options.Validated();
        if (data.Context != options.Context)
            throw new ArgumentException($"the data has context {data.Context}, the run expects {options.Context}", nameof(data));
        this.model = model;
        this.data = data;
        this.outputDirectory = outputDirectory;
        device = TorchDevice.Resolve(options.Device);
        var parameterType = options.Precision == Precision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;

        long count = model.parameters().Sum(p => p.numel());
        int world = this.group.WorldSize;
        long shard = (count + world - 1) / world;
        long start = Math.Min(count, this.group.Rank * shard), length = Math.Min(count, start + shard) - start;
        bool empty = model.IsEmpty;
        bool stage3 = world > 1 && options.ZeroStage == 3;
        optimizer = MasterAdamW.Create(options.Optimizer, start, Math.Max(1, length), options.AdamW, device);
        try
        {
            // The master weights are copied from the float32 parameters before they become bf16, so they are exact.
            flat = new FlatParameters(model, parameterType, device, SetMaster, capacity: world > 1 ? shard * world : 0, fullGradients: world == 1,
                shard: stage3 ? (start, shard) : null);
            gradients = new GradientShards(flat, this.group);
            if (stage3) gathering = new ParameterGathering(flat, gradients);
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
        pass = new BlockwiseBackprop(model, flat, gradients, options.ActivationCheckpointing, options.LossChunkTokens, gathering);
        Directory.CreateDirectory(outputDirectory);
    }

    // Copies the part of one parameter (float32 values of a slot) that falls in this rank's range into the master weights.
    void SetMaster(FlatParameters.Slot slot, Tensor values)
    {
        long from = Math.Max(slot.Offset, optimizer.Start), to = Math.Min(slot.Offset + slot.Count, optimizer.Start + optimizer.Count);
        if (from >= to) return;
        using var flatValues = values.reshape(-1);
        using var part = flatValues.narrow(0, from - slot.Offset, to - from);
        optimizer.SetMaster(from - optimizer.Start, part);
    }

    /// <summary>This rank's slice of the flat parameters (the whole buffer on one process).</summary>
    Tensor OwnWeights() => flat.Weights.narrow(0, optimizer.Start - flat.WeightsStart, optimizer.Count);

    /// <summary>After the shards changed: every rank gets every shard (no-op on one process, and under stage 3, where ranks keep their shard only).</summary>
    void GatherWeights()
    {
        if (group.WorldSize == 1 || flat.Sharded) return;
        using var scope = NewDisposeScope();
        group.AllGather(flat.Weights.narrow(0, group.Rank * gradients.ShardSize, gradients.ShardSize), flat.Weights);
    }

    // A model built without storage: its flat buffers are filled here, master weights first where they are known exactly.
    void FillEmptyModel(LlamaModel model, string? baseModelDirectory)
    {
        using var _ = no_grad();
        if (baseModelDirectory is null && flat.Sharded)
        {
            // Every rank draws the whole model, one parameter at a time in the order and type the unsharded
            // parameters are drawn in (so the values are those of one process), and keeps its own range.
            foreach (var (name, _, slot) in flat.Parameters)
            {
                using var scope = NewDisposeScope();
                var values = empty(slot.Shape, flat.ParameterType, device);
                LlamaModel.Initialize(name, values, model.Config.InitializerRange);
                SetMaster(slot, values);
            }
            using (var own = OwnWeights()) optimizer.CopyMasterTo(own);
            return;
        }
        if (baseModelDirectory is null)
        {
            model.InitializeWeights();
            group.Broadcast(flat.Weights, 0); // every rank starts from rank 0's draw
            foreach (var (_, p, slot) in flat.Parameters) SetMaster(slot, p);
            return;
        }
        var slots = flat.Parameters.ToDictionary(e => e.Name, e => e.Slot);
        var saved = slots.Where(e => !(model.Config.TieWordEmbeddings && e.Key == "lm_head.weight")).ToDictionary(e => e.Key, e => e.Value.Shape);
        Weights.HuggingFaceCheckpoint.Read(baseModelDirectory, saved, (name, loaded) => SetMaster(slots[name], loaded));
        using (var own = OwnWeights()) optimizer.CopyMasterTo(own);
        GatherWeights();
    }

    public int Step { get; private set; }
    public long TokensSeen { get; private set; }
    /// <summary>
    /// Tokens this process ran forward and backward on since it was built: its own micro-batches only, so on N ranks
    /// about 1/N of the steps' tokens (what <c>wf bench train --gpus N</c> reports per rank).
    /// </summary>
    public long LocalTokens { get; private set; }
    public string CheckpointsDirectory => Path.Combine(outputDirectory, "checkpoints");
    public string MetricsPath => Path.Combine(outputDirectory, "metrics.jsonl");
    public FlatParameters Parameters => flat;
    /// <summary>ZeRO stage 3's gatherer (null otherwise): how many parameter elements this rank held at most.</summary>
    public ParameterGathering? Gathering => gathering;
    public GradientShards Gradients => gradients;
    public MasterAdamW Optimizer => optimizer;
    public ICollectives Group => group;
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
        group.Barrier(); // every rank resumes from the same checkpoint (rank 0 may have just fetched it)
        if (newest is null) return null;
        var state = TrainingCheckpoints.Restore(newest, flat, optimizer);
        using (var own = OwnWeights()) optimizer.CopyMasterTo(own);
        GatherWeights();
        Step = state.Step;
        TokensSeen = state.TokensSeen;
        data.Seek(state.DataPosition);
        // On an empty disk (another machine resuming from the checkpoint store) the history comes with the checkpoint.
        string carried = Path.Combine(newest, TrainingCheckpoints.MetricsFile);
        if (group.Rank == 0)
        {
            if (!File.Exists(MetricsPath) && File.Exists(carried)) File.Copy(carried, MetricsPath);
            TrimMetrics(Step);
        }
        return newest;
    }

    /// <summary>
    /// Writes the trained parameters (bf16 for bf16 training: the master weights rounded as the model computed with
    /// them) into <paramref name="directory"/> in HuggingFace layout; rank 0 writes. Every rank must call it: under
    /// stage 3 the parameters are gathered one at a time and rank 0 keeps a host copy of each until the write.
    /// </summary>
    public void SaveModel(string directory)
    {
        if (gathering is null)
        {
            // Every rank holds all parameters after the last all-gather.
            if (group.Rank == 0) Weights.HuggingFaceCheckpoint.Save(model, directory, dtype: flat.ParameterType);
            return;
        }
        var copies = new List<(string Name, Tensor Values)>();
        try
        {
            foreach (var (name, p, slot) in flat.Parameters)
            {
                var one = new ParameterGroup([p], [slot]);
                gathering.Gather(one);
                if (group.Rank == 0)
                    using (no_grad())
                    using (var values = p.detach())
                        copies.Add((name, values.to(CPU, copy: true).DetachFromDisposeScope()));
                gathering.Release(one);
            }
            if (group.Rank == 0)
                Weights.HuggingFaceCheckpoint.Save(model.Config,
                    copies.Select(c => new Weights.HuggingFaceCheckpoint.WeightSource(c.Name, c.Values.shape, () => c.Values.alias())).ToList(),
                    directory, dtype: flat.ParameterType);
        }
        finally
        {
            foreach (var (_, values) in copies) values.Dispose();
        }
    }

    public string SaveCheckpoint()
    {
        string folder = TrainingCheckpoints.Save(CheckpointsDirectory, new TrainerState(Step, data.Position, TokensSeen), model, flat, optimizer, MetricsPath, group);
        if (PruneLocally && options.KeepCheckpoints > 0 && group.Rank == 0) TrainingCheckpoints.Prune(CheckpointsDirectory, options.KeepCheckpoints);
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
            if (StopRequested(cancellation))
            {
                if (options.CheckpointOnCancel && Step > lastCheckpoint) SaveCheckpoint();
                return run;
            }
            var metrics = TrainStep();
            run.Add(metrics);
            if (group.Rank == 0) AppendMetrics(metrics);
            if (options.CheckpointEvery > 0 && Step % options.CheckpointEvery == 0) { SaveCheckpoint(); lastCheckpoint = Step; }

            double perStep = clock.Elapsed.TotalSeconds / run.Count;
            progress?.Report(new TrainingProgress(Step, options.TotalSteps, metrics.Loss, metrics.TokensPerSecond,
                metrics.LearningRate, metrics.GradNorm, clock.Elapsed, TimeSpan.FromSeconds(perStep * (options.TotalSteps - Step))));
        }
        return run;
    }

    // Ranks must stop at the same step boundary (a rank that checkpoints while another starts the next step's
    // collectives would mismatch them): each step, the ranks agree whether any of them was asked to stop.
    bool StopRequested(CancellationToken cancellation)
    {
        if (group.WorldSize == 1) return cancellation.IsCancellationRequested;
        using var flag = (cancellation.IsCancellationRequested ? ones(1, ScalarType.Float32, device) : zeros(1, ScalarType.Float32, device));
        group.AllReduceSum(flag);
        return flag.item<float>() > 0;
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
        gradients.Zero();
        using var total = zeros(1, ScalarType.Float32, device);
        int microBatches = (sequences.Count + options.MicroBatchSequences - 1) / options.MicroBatchSequences;
        int world = group.WorldSize, rounds = (microBatches + world - 1) / world;
        for (int round = 0; round < rounds; round++)
        {
            int index = (round * world) + group.Rank;   // rank r: micro-batches r, r+N, r+2N, …
            if (index >= microBatches)
            {
                pass.ContributeNothing();               // the others still reduce this round's gradients
                continue;
            }
            using var scope = NewDisposeScope();
            int start = index * options.MicroBatchSequences;
            int count = Math.Min(options.MicroBatchSequences, sequences.Count - start);
            var batch = ToTensor(sequences, start, count, device);     // [count, T+1]
            long context = batch.shape[1] - 1;
            using var loss = pass.Accumulate(batch.narrow(1, 0, context), batch.narrow(1, 1, context), (double)count / sequences.Count);
            total.add_(loss);
            LocalTokens += count * context;
        }
        group.AllReduceSum(total);
        return total.item<float>();
    }

    /// <summary>The global L2 norm of the accumulated gradients and the factor that clips it to MaxGradNorm (PyTorch's rule: max/(norm+1e-6) when below 1).</summary>
    public (double Norm, double Scale) ClipCoefficient()
    {
        double value = gradients.Norm();
        double max = options.MaxGradNorm > 0 ? options.MaxGradNorm : double.PositiveInfinity;
        double coefficient = max / (value + 1e-6);
        return (value, coefficient < 1 ? coefficient : 1.0);
    }

    /// <summary>AdamW on the master weights with the accumulated gradients times <paramref name="gradientScale"/>; the parameters are rewritten.</summary>
    public void ApplyOptimizerStep(double learningRate, double gradientScale)
    {
        using (var scope = NewDisposeScope())
            optimizer.Step(learningRate, gradientScale, gradients.Local.narrow(0, 0, optimizer.Count), OwnWeights());
        GatherWeights();
    }

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
        gradients.Dispose();
        flat.Dispose();
        optimizer.Dispose();
    }
}
