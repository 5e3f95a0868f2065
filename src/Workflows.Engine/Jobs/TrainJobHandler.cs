using System.Globalization;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Experiments.Validation;
using Workflows.Training;
using Workflows.Training.Data;

namespace Workflows.Engine.Jobs;

/// <summary>
/// The train job: downloads the prepared data (verified against the manifest) into the local cache, trains with
/// <see cref="TrainingRunner"/> in a work folder keyed by the job's output key (so an agent that takes over a job
/// resumes from the newest checkpoint), then uploads the final model and metrics and publishes them.
/// </summary>
public sealed class TrainJobHandler(EngineServices services) : IGpuJobHandler
{
    public const string Version = GpuJobStep.Version;

    public string Type => "train";

    public async Task<StepOutput> RunAsync(GpuJob job, Action<string> reportProgress, CancellationToken cancellationToken)
    {
        var data = job.Inputs.Values.FirstOrDefault(o => o.Activity == PrepareDataStep.Type)
                   ?? throw new InvalidOperationException($"step '{job.Step}' needs a prepare-data step; its inputs are: {string.Join(", ", job.Inputs.Keys)}");
        var yaml = await services.Runs.ReadExperimentYamlAsync(job.RunId, cancellationToken);
        var spec = ExperimentLoader.LoadText($"runs/{job.RunId}/experiment.yaml", yaml, new LoadOptions(PolicyMode.Off)).Require();
        reportProgress("downloading data");
        var folder = await PrepareDataStep.DownloadDataAsync(services, data, cancellationToken);
        var key = ArtifactKey.FromParts(job.Type, Version, job.KeyHash);
        // A forced rerun (wf rerun --force / --from) must train again, not resume the earlier run's checkpoints:
        // its work folder is its own (attempts of the same run still resume from each other's checkpoints).
        var work = services.CacheFolder("train-work", job.Recompute ? $"{key.Hash}-{job.RunId}" : key.Hash);
        using var source = new PackedShardSequenceSource(folder);
        var vocabulary = services.Options.ResolveTokenizer(spec.Data.Tokenizer).VocabularySize;
        var trainingJob = SpecMapping.ToTrainingJob(spec, work, vocabulary, source.SequencesPerEpoch, services.Options.TrainingDevice, resume: true);
        var progress = new Progress(p => reportProgress(string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps} loss {p.Loss:0.0000} {p.TokensPerSecond:N0} tokens/s")));
        var result = await Task.Run(() => TrainingRunner.Run(trainingJob, source, progress, cancellationToken), cancellationToken);
        if (!result.Finished || result.FinalModelDirectory is null)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new InvalidOperationException($"training stopped after {result.StepsCompleted} steps without finishing");
        }

        var writer = services.Manifests.BeginWrite(key, services.Producer(job.RunId));
        foreach (var file in Directory.EnumerateFiles(result.FinalModelDirectory).Order(StringComparer.Ordinal))
        {
            await using var content = File.OpenRead(file);
            await writer.PutAsync($"{TrainingRunner.FinalModelFolder}/{Path.GetFileName(file)}", content, cancellationToken);
        }

        var metrics = Path.Combine(work, "metrics.jsonl");
        if (File.Exists(metrics))
        {
            await using var content = File.OpenRead(metrics);
            await writer.PutAsync("metrics.jsonl", content, cancellationToken);
        }

        var published = await writer.PublishAsync(new Dictionary<string, string>
        {
            ["steps"] = result.StepsCompleted.ToString(CultureInfo.InvariantCulture),
            ["lastLoss"] = result.LastLoss?.ToString("R", CultureInfo.InvariantCulture) ?? "",
        }, cancellationToken);
        return new StepOutput(job.Step, key.Activity, key.Hash, key.Prefix, published.Manifest.ContentHash, Cached: false);
    }

    private sealed class Progress(Action<Workflows.Training.Loop.TrainingProgress> report) : IProgress<Workflows.Training.Loop.TrainingProgress>
    {
        public void Report(Workflows.Training.Loop.TrainingProgress value) => report(value);
    }
}
