using System.Globalization;
using Workflows.Engine.Steps;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Training;
using Workflows.Training.Distributed;
using Workflows.Training.Data;
using Workflows.Training.Loop;

namespace Workflows.Engine.Jobs;

/// <summary>
/// train, a thin adapter over <see cref="TrainingRunner"/>: downloads the prepared data (verified), trains in a work
/// folder keyed by the job's lineage (an attempt on the same machine also finds checkpoints not yet uploaded when
/// the last one died; the GPU job lease keeps two agents off one job), uploads every checkpoint to
/// the artifact store as it trains (<c>train-checkpoints/&lt;key&gt;/</c>, content-addressed, retention by
/// <c>training.keep_checkpoints</c>), so an agent on any machine that takes the job over resumes from the newest
/// uploaded checkpoint, and hands <c>final-model/</c> and <c>metrics.jsonl</c> to the engine to publish.
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
        // A forced rerun (wf rerun --force / --from) must train again, not resume the earlier run's checkpoints: its
        // checkpoints are its own. Attempts of the same run resume from each other's, through the store.
        var lineage = job.Job.Recompute ? $"{job.Job.KeyHash}-{job.Job.RunId}" : job.Job.KeyHash;
        var store = new ArtifactCheckpointStore(services.Store, $"train-checkpoints/{lineage}");
        var work = services.CacheFolder("train-work", lineage);
        using var source = new PackedShardSequenceSource(data);
        var vocabulary = services.Options.ResolveTokenizer(parameters.Tokenizer).VocabularySize;
        // A relative model.base resolves against the experiment's folder (ToTrainingJob takes it from the file's path).
        var trainingJob = SpecMapping.ToTrainingJob(AsExperiment(parameters), work, vocabulary, source.SequencesPerEpoch, services.Options.TrainingDevice,
            resume: true, experimentFile: Path.Combine(job.Job.ExperimentDirectory, "experiment.yaml"));
        var progress = new Progress(p => reportProgress(p.StatusLine()));
        // resources.gpu_count ranks, as many as this agent has (wf gpu-agent --gpus N); the global batch is the same at any count.
        var ranks = Math.Max(1, Math.Min(parameters.Resources.GpuCount, services.Options.TrainingRanks));
        if (parameters.Resources.GpuCount > ranks)
        {
            reportProgress($"the experiment asks for {parameters.Resources.GpuCount} GPUs (its memory plan assumes them); this agent trains on {ranks}");
        }

        var result = ranks > 1
            ? await Task.Run(() => TrainOnRanks(new RankJobFile(trainingJob, data, store.Prefix, services.Options.ContainerName), ranks, work, reportProgress, cancellationToken), cancellationToken)
            : await Task.Run(() => TrainingRunner.Run(trainingJob, source, progress, cancellationToken, store, reportProgress), cancellationToken);
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

        // Everything worth keeping is in the store (checkpoints) or in the output (model, metrics): free the disk (a
        // 7B checkpoint is 81 GB). A failed attempt keeps its folder: its newest checkpoint may not have been uploaded,
        // and the next attempt on this machine resumes from the newer of it and the store's.
        try
        {
            Directory.Delete(work, recursive: true);
        }
        catch (IOException)
        {
        }

        return new Dictionary<string, string>
        {
            ["steps"] = result.StepsCompleted.ToString(CultureInfo.InvariantCulture),
            ["lastLoss"] = result.LastLoss?.ToString("R", CultureInfo.InvariantCulture) ?? "",
            // The checkpoint this attempt started from ("" from the base weights): a job taken over shows it resumed.
            ["resumedFrom"] = result.ResumedFrom is { } from ? Path.GetFileName(from.TrimEnd(Path.DirectorySeparatorChar)) : "",
        };
    }

    /// <summary>
    /// The experiment as far as training reads it: exactly the step's parameters, every other field at its default.
    /// <see cref="SpecMapping.ToTrainingJob"/> reads model, training, data.context/token_budget/seed and resources; a
    /// test checks that this gives the same training job as the whole experiment, for every experiment in experiments/.
    /// </summary>
    public static ExperimentSpec AsExperiment(TrainParameters p) =>
        new("train", p.Model, new DataSpec(p.TokenBudget, p.Context, Seed: p.Seed, Tokenizer: p.Tokenizer), Training: p.Training, Resources: p.Resources);

    /// <summary>
    /// Data-parallel on this machine's GPUs (<c>wf gpu-agent --gpus N</c>): one <c>wf train-rank</c> process per GPU,
    /// started as <c>wf train --gpus N</c> starts them; rank 0's lines become the job's progress. Cancelling (lease lost,
    /// SIGTERM) signals every rank to checkpoint and stop; a rank that dies fails the job with the ranks' last errors.
    /// </summary>
    private static TrainingResult TrainOnRanks(RankJobFile rankJob, int ranks, string work, Action<string> reportProgress, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(work);
        var file = Path.Combine(work, "rank-job.json");
        rankJob.Write(file);
        File.Delete(rankJob.ResultPath);
        var errors = new Queue<string>();
        using var output = new LineWriter(reportProgress);
        using var error = new LineWriter(line =>
        {
            lock (errors)
            {
                errors.Enqueue(line);
                if (errors.Count > 20) errors.Dequeue();
            }
        });
        int exit = RankLauncher.Run([RankJobFile.Command, file], ranks, output, error, cancellationToken);
        if (exit != 0 || rankJob.ReadResult() is not { } result)
        {
            lock (errors)
                throw new InvalidOperationException($"data-parallel training on {ranks} ranks failed:\n{string.Join('\n', errors)}");
        }

        return result;
    }

    private sealed class LineWriter(Action<string> line) : TextWriter
    {
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

        public override void WriteLine(string? value)
        {
            if (value is not null) line(value);
        }
    }

    private sealed class Progress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
