using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Training.Loop;
using Offload = Workflows.Experiments.Spec.Offload;
using Workflows.Training.Model;
using TrainingPrecision = Workflows.Training.Loop.Precision;

namespace Workflows.Training;

/// <summary>Turns an experiment's model and training sections into a <see cref="TrainingJob"/>.</summary>
public static class SpecMapping
{
    /// <param name="vocabularySize">The tokenizer's vocabulary: a randomly initialised model (tiny) takes it when the spec does not set one.</param>
    /// <param name="sequencesAvailable">Packed sequences in the data; the step count is planned from the budget and capped by these.</param>
    public static TrainingJob ToTrainingJob(ExperimentSpec spec, string outputDirectory, int vocabularySize, long sequencesAvailable,
        string device, bool resume, string? experimentFile = null)
    {
        var context = checked((int)spec.Data.Context);
        var t = spec.Training;
        LlamaConfig config;
        string? baseDirectory = null;
        if (ModelCatalog.IsPath(spec.Model.Base))
        {
            baseDirectory = experimentFile is null ? spec.Model.Base : Path.GetFullPath(spec.Model.Base, Path.GetDirectoryName(Path.GetFullPath(experimentFile))!);
            config = HuggingFaceCheckpointConfig(baseDirectory);
        }
        else
        {
            var shape = ModelCatalog.Known[spec.Model.Base].With(spec.Model.Architecture);
            var randomInit = spec.Model.Base == "tiny";
            config = new LlamaConfig(
                VocabSize: randomInit && spec.Model.Architecture?.VocabSize is null ? vocabularySize : shape.VocabSize,
                HiddenSize: shape.HiddenSize,
                IntermediateSize: shape.IntermediateSize,
                NumLayers: shape.Layers,
                NumHeads: shape.Heads,
                NumKeyValueHeads: shape.KvHeads,
                MaxPositionEmbeddings: checked((int)shape.MaxPositionEmbeddings),
                TieWordEmbeddings: shape.TieEmbeddings);
        }

        var rope = spec.Model.Rope;
        config = config with
        {
            RopeTheta = rope.Theta,
            Rope = rope.Scaling is { } s
                ? new RopeScaling(
                    s.Type switch
                    {
                        RopeScalingType.Linear => RopeScalingKind.Linear,
                        RopeScalingType.Dynamic => RopeScalingKind.DynamicNtk,
                        _ => RopeScalingKind.Yarn,
                    },
                    s.Factor,
                    checked((int)s.OriginalContext))
                : null,
        };

        if (config.VocabSize < vocabularySize)
        {
            throw new ArgumentException($"the model's vocabulary ({config.VocabSize}) is smaller than the tokenizer's ({vocabularySize}): token ids would be out of range");
        }

        var perStep = Plan.SequencesPerStep(t.BatchTokens, context);
        var steps = Math.Max(1, Math.Min(spec.Data.TokenBudget / context, sequencesAvailable) / perStep);
        if (t.MaxSteps is { } max)
        {
            steps = Math.Min(steps, max);
        }

        // Where the optimizer state lives and the ZeRO stage: what the memory plan chose for the experiment's GPUs
        // (offload: auto picks the GPU when everything fits there; stage 3 only when no stage-2 plan fits); on the
        // CPU it makes no difference.
        var memory = device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase)
            ? MemoryPlanner.Choose(spec, ModelCatalog.Resolve(spec.Model) ?? ModelCatalog.Known["llama-2-7b"].With(spec.Model.Architecture))
            : null;
        var placement = spec.Training.Offload switch
        {
            Offload.Cpu => OptimizerPlacement.Host,
            Offload.Gpu => OptimizerPlacement.Device,
            _ => memory?.Chosen?.Placement == "cpu" ? OptimizerPlacement.Host : OptimizerPlacement.Device,
        };

        var options = new TrainingOptions(
            Context: context,
            BatchTokens: t.BatchTokens,
            MicroBatchSequences: t.MicroBatch,
            TotalSteps: checked((int)steps),
            LearningRate: t.Lr,
            WarmupSteps: t.WarmupSteps,
            Beta1: t.Beta1,
            Beta2: t.Beta2,
            WeightDecay: t.WeightDecay,
            MaxGradNorm: t.GradClip,
            Precision: t.Precision == Experiments.Spec.Precision.Bf16 ? TrainingPrecision.Bf16 : TrainingPrecision.Fp32,
            ActivationCheckpointing: t.ActivationCheckpointing,
            CheckpointEvery: t.CheckpointInterval,
            Device: device,
            Seed: spec.Data.Seed,
            Schedule: t.Schedule switch
            {
                LrSchedule.Cosine => LearningRateSchedule.Cosine,
                LrSchedule.Linear => LearningRateSchedule.Linear,
                _ => LearningRateSchedule.Constant,
            },
            Optimizer: placement,
            KeepCheckpoints: t.KeepCheckpoints ?? 0,
            ZeroStage: memory?.Chosen?.ZeroStage == 3 ? 3 : 2);
        return new TrainingJob(config, options, outputDirectory, baseDirectory, resume);
    }

    private static LlamaConfig HuggingFaceCheckpointConfig(string directory) =>
        Weights.HuggingFaceCheckpoint.ReadConfig(directory);
}
