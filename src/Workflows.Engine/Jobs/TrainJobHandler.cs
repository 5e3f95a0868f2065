using System.Globalization;
using Workflows.Engine.Steps;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Training;
using Workflows.Training.Data;
using Workflows.Training.Loop;

namespace Workflows.Engine.Jobs;

/// <summary>
/// train, a thin adapter over <see cref="TrainingRunner"/>: downloads the prepared data (verified), trains in a work
/// folder keyed by the job's key (so an agent that takes the job over resumes from the newest checkpoint), and hands
/// <c>final-model/</c> and <c>metrics.jsonl</c> to the engine to publish.
/// </summary>
public sealed class TrainJobHandler() : JobHandler<TrainParameters>(StepContracts.Train)
{
    /// <summary>A base model given as a folder (model.base: path) is read from outside the store: its files enter the key.</summary>
    protected override Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, TrainParameters parameters, CancellationToken cancellationToken)
    {
        if (!ModelCatalog.IsPath(parameters.Model.Base))
        {
            return Task.FromResult<IReadOnlyList<ExternalInput>>([]);
        }

        var folder = Path.GetFullPath(parameters.Model.Base, job.Job.ExperimentDirectory);
        return Task.FromResult<IReadOnlyList<ExternalInput>>([.. Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal)
            .Select(f => new ExternalInput($"base-model:{Path.GetFileName(f)}", DataPrep.Corpus.CorpusMeasurer.Sha256Of(f), f))]);
    }

    protected override async Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, TrainParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        var services = job.Services;
        reportProgress("downloading data");
        var data = await job.DownloadAsync(job.Input(StepContracts.PrepareData.Type)!, PrepareDataStep.DataFolder, cancellationToken);
        // A forced rerun (wf rerun --force / --from) must train again, not resume the earlier run's checkpoints:
        // its work folder is its own (attempts of the same run still resume from each other's checkpoints).
        var work = services.CacheFolder("train-work", job.Job.Recompute ? $"{job.Job.KeyHash}-{job.Job.RunId}" : job.Job.KeyHash);
        using var source = new PackedShardSequenceSource(data);
        var vocabulary = services.Options.ResolveTokenizer(parameters.Tokenizer).VocabularySize;
        // A relative model.base resolves against the experiment's folder (ToTrainingJob takes it from the file's path).
        var trainingJob = SpecMapping.ToTrainingJob(AsExperiment(parameters), work, vocabulary, source.SequencesPerEpoch, services.Options.TrainingDevice,
            resume: true, experimentFile: Path.Combine(job.Job.ExperimentDirectory, "experiment.yaml"));
        var progress = new Progress(p => reportProgress(string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps} loss {p.Loss:0.0000} {p.TokensPerSecond:N0} tokens/s")));
        var result = await Task.Run(() => TrainingRunner.Run(trainingJob, source, progress, cancellationToken), cancellationToken);
        if (!result.Finished || result.FinalModelDirectory is null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new InvalidOperationException($"training stopped after {result.StepsCompleted} steps without finishing");
        }

        // Moved, not copied (a 7B model is 13 GB): a retry after a failed publish resumes at the last step and writes it again.
        Directory.Move(result.FinalModelDirectory, Path.Combine(job.OutputDirectory, TrainingRunner.FinalModelFolder));
        var metrics = Path.Combine(work, "metrics.jsonl");
        if (File.Exists(metrics))
        {
            File.Copy(metrics, Path.Combine(job.OutputDirectory, "metrics.jsonl"));
        }

        return new Dictionary<string, string>
        {
            ["steps"] = result.StepsCompleted.ToString(CultureInfo.InvariantCulture),
            ["lastLoss"] = result.LastLoss?.ToString("R", CultureInfo.InvariantCulture) ?? "",
        };
    }

    /// <summary>
    /// The experiment as far as training reads it: exactly the step's parameters, every other field at its default.
    /// <see cref="SpecMapping.ToTrainingJob"/> reads model, training, data.context/token_budget/seed and resources; a
    /// test checks that this gives the same training job as the whole experiment, for every experiment in experiments/.
    /// </summary>
    public static ExperimentSpec AsExperiment(TrainParameters p) =>
        new("train", p.Model, new DataSpec(p.TokenBudget, p.Context, Seed: p.Seed, Tokenizer: p.Tokenizer), Training: p.Training, Resources: p.Resources);

    private sealed class Progress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
