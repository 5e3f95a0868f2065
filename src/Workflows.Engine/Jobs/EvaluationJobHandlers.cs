using System.Globalization;
using System.Text.Json;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.DataPrep.Corpus;
using Workflows.Evaluation.DomainLoss;
using Workflows.Training.Inference;
using Workflows.Engine.Corpora;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Evaluation.Inference;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Reports;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.Training;
using Workflows.Training.Weights;
using TorchSharp;

namespace Workflows.Engine.Jobs;

/// <summary>Shared plumbing of the jobs: the run's experiment, downloads of earlier steps' outputs, publishing a folder.</summary>
internal static class EvaluationJobs
{
    public static async Task<ExperimentSpec> ExperimentAsync(EngineServices services, GpuJob job, CancellationToken ct)
    {
        var yaml = await services.Runs.ReadExperimentYamlAsync(job.RunId, ct);
        return ExperimentLoader.LoadText($"runs/{job.RunId}/experiment.yaml", yaml, new LoadOptions(PolicyMode.Off)).Require();
    }

    public static StepOutput InputOfType(GpuJob job, string activity) =>
        job.Inputs.Values.FirstOrDefault(o => o.Activity == activity)
        ?? throw new InvalidOperationException($"step '{job.Step}' needs a '{activity}' step; its inputs are: {string.Join(", ", job.Inputs.Keys)}");

    /// <summary>Downloads (verified by SHA-256) the files of a published output whose path starts with <paramref name="folder"/>.</summary>
    public static async Task<string> DownloadAsync(EngineServices services, StepOutput output, string version, string folder, CancellationToken ct)
    {
        var manifest = await services.Manifests.TryGetAsync(ArtifactKey.FromParts(output.Activity, version, output.KeyHash), ct)
                       ?? throw new InvalidDataException($"the output of step '{output.Step}' ({output.Prefix}) is not in the store");
        var local = services.CacheFolder(output.Activity, manifest.ContentHash);
        await DownloadEntriesAsync(services, manifest, folder + "/", local, ct);
        return local;
    }

    /// <summary>
    /// Downloads (verified) every entry under <paramref name="pathPrefix"/> into <paramref name="local"/>, keeping the
    /// path below the prefix; a file already there with the entry's length is kept (the folder is keyed by content).
    /// </summary>
    public static async Task<IReadOnlyList<string>> DownloadEntriesAsync(EngineServices services, Manifest manifest, string pathPrefix,
        string local, CancellationToken ct)
    {
        var files = new List<string>();
        foreach (var entry in manifest.Entries.Where(e => e.Path.StartsWith(pathPrefix, StringComparison.Ordinal)))
        {
            var target = Path.Combine(local, entry.Path[pathPrefix.Length..]);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (!File.Exists(target) || new FileInfo(target).Length != entry.Length)
            {
                await services.Manifests.DownloadVerifiedToFileAsync(manifest, entry.Path, target, ct);
            }

            files.Add(target);
        }

        return files;
    }

    public static async Task<StepOutput> PublishFolderAsync(EngineServices services, GpuJob job, string folder, string prefix,
        IReadOnlyDictionary<string, string> properties, CancellationToken ct)
    {
        var key = ArtifactKey.FromParts(job.Type, GpuJobStep.Version, job.KeyHash);
        var writer = services.Manifests.BeginWrite(key, services.Producer(job.RunId));
        foreach (var file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            await using var content = File.OpenRead(file);
            await writer.PutAsync($"{prefix}/{Path.GetFileName(file)}", content, ct);
        }

        var published = await writer.PublishAsync(properties, ct);
        return new StepOutput(job.Step, key.Activity, key.Hash, key.Prefix, published.Manifest.ContentHash, Cached: false);
    }
}

/// <summary>
/// evaluate-needle: the trained model (downloaded and verified) on the experiment's needle grid, with the KV cache of
/// each length's shared haystack prefix reused; one result JSON per cell and the heatmap, published as one output.
/// </summary>
public sealed class NeedleJobHandler(EngineServices services, string defaultHaystack) : IGpuJobHandler
{
    public string Type => "evaluate-needle";

    public async Task<StepOutput> RunAsync(GpuJob job, Action<string> reportProgress, CancellationToken cancellationToken)
    {
        var spec = await EvaluationJobs.ExperimentAsync(services, job, cancellationToken);
        var modelDir = await EvaluationJobs.DownloadAsync(services, EvaluationJobs.InputOfType(job, "train"), TrainJobHandler.Version,
            TrainingRunner.FinalModelFolder, cancellationToken);
        var tokenizer = services.Options.ResolveTokenizer(spec.Data.Tokenizer);
        var setup = NeedleSetup.FromSpec(spec.Evaluation.Needle, tokenizer, defaultHaystack);
        var output = services.NewScratchDirectory("needle");
        var summary = await Task.Run(() =>
        {
            using var model = HuggingFaceCheckpoint.LoadModel(modelDir);
            model.to(torch.device(services.Options.TrainingDevice));
            model.eval();
            using var generator = new TorchGreedyGenerator(model, tokenizer, spec.Name, NeedleSetup.RopeResetLength(spec));
            return setup.CreateRunner(generator, output, spec.Evaluation.Needle.MaxNewTokens).Run(setup.Grid,
                new SyncProgress<NeedleProgress>(p => reportProgress($"cell {p.Done}/{p.Total}")), cancellationToken);
        }, cancellationToken);
        var cells = NeedleAggregation.ByCell(summary.Results, setup.Scorer);
        var mean = cells.Count == 0 ? 0 : cells.Average(c => c.Mean);
        Workflows.Evaluation.Heatmaps.NeedleHeatmap.Write(Path.Combine(output, "heatmap.png"), cells,
            new Workflows.Evaluation.Heatmaps.HeatmapOptions(spec.Name, spec.Data.Context), setup.Scorer.ToString());
        return await EvaluationJobs.PublishFolderAsync(services, job, output, "needle", new Dictionary<string, string>
        {
            ["cells"] = cells.Count.ToString(CultureInfo.InvariantCulture),
            ["meanScore"] = mean.ToString("R", CultureInfo.InvariantCulture),
            ["scorer"] = setup.Scorer.ToString(),
        }, cancellationToken);
    }
}

/// <summary>
/// evaluate-domain-loss: the trained model over the experiment's held-out files (<c>evaluation.domain_loss.paths</c>,
/// recorded absolute in the run record at submit, or the registered corpus <c>evaluation.domain_loss.corpus</c>): loss per source in the length buckets and at each evaluation length
/// (<see cref="DomainLossEvaluation"/>), published as <c>domain-loss/loss.json</c> with the SHA-256 of every file read
/// (<c>domain-loss/inputs.json</c>). An experiment that turns it off (<c>enabled: false</c>) gets an empty output marked
/// "disabled"; one that enables it without held-out files fails the step saying so, never a made-up number.
/// </summary>
public sealed class DomainLossJobHandler(EngineServices services) : IGpuJobHandler
{
    public const string StepType = "evaluate-domain-loss";

    public string Type => StepType;

    public async Task<StepOutput> RunAsync(GpuJob job, Action<string> reportProgress, CancellationToken cancellationToken)
    {
        var spec = await EvaluationJobs.ExperimentAsync(services, job, cancellationToken);
        var output = services.NewScratchDirectory("domain-loss");
        if (!spec.Evaluation.DomainLoss.Enabled)
        {
            return await EvaluationJobs.PublishFolderAsync(services, job, output, "domain-loss",
                new Dictionary<string, string> { ["state"] = "disabled" }, cancellationToken);
        }

        var record = (await services.Runs.GetAsync(job.RunId, cancellationToken))?.Record
                     ?? throw new InvalidOperationException($"run {job.RunId} has no run record");
        var paths = record.HeldOutPaths ?? [];
        List<InputFile> files;
        List<HeldOutInput> inputs;
        if (paths.Count > 0)
        {
            files = [.. InputFile.Discover(paths)];
            inputs = [.. files.Select(f => new HeldOutInput(f.Path, new FileInfo(f.Path).Length, CorpusMeasurer.Sha256Of(f.Path)))];
        }
        else if (spec.Evaluation.DomainLoss.Corpus is { } corpus)
        {
            // A registered corpus: keys and SHA-256 from its manifest, bytes downloaded (verified) into this machine's cache.
            reportProgress($"held-out corpus '{corpus}'");
            files = [];
            inputs = [];
            foreach (var file in await CorpusInputs.ResolveAsync(services, corpus, cancellationToken))
            {
                files.Add(new InputFile(await CorpusInputs.LocalPathAsync(services, file, cancellationToken), file.Key));
                inputs.Add(new HeldOutInput($"corpus:{corpus}/{file.Key}", file.Bytes, file.Sha256));
            }
        }
        else
        {
            throw new InvalidOperationException(
                "evaluation.domain_loss is enabled but names no held-out data: set evaluation.domain_loss.paths (local files) or .corpus (registered with wf corpus upload), or set enabled: false");
        }

        var modelDir = await EvaluationJobs.DownloadAsync(services, EvaluationJobs.InputOfType(job, "train"), TrainJobHandler.Version,
            TrainingRunner.FinalModelFolder, cancellationToken);
        var tokenizer = services.Options.ResolveTokenizer(spec.Data.Tokenizer);
        var report = await Task.Run(() =>
        {
            var documents = files.SelectMany(f => CorpusReader.Read(f, new CorpusReaderOptions(), new BadRecordLog(skip: false)))
                .Select(d => (d.Source, d.Text));
            using var model = HuggingFaceCheckpoint.LoadModel(modelDir);
            model.to(torch.device(services.Options.TrainingDevice));
            model.eval();
            using var generator = new LlamaGenerator(model);
            return DomainLossEvaluation.Run(spec.Name, generator, tokenizer, documents, spec.Evaluation.DomainLoss,
                new SyncProgress<string>(reportProgress), cancellationToken);
        }, cancellationToken);
        DomainLossJson.Write(Path.Combine(output, DomainLossJson.FileName), report);
        File.WriteAllText(Path.Combine(output, "inputs.json"), JsonSerializer.Serialize(inputs, DomainLossJson.Options));
        var sources = report.Buckets.Select(b => b.Source).Distinct().Count();
        return await EvaluationJobs.PublishFolderAsync(services, job, output, "domain-loss", new Dictionary<string, string>
        {
            ["state"] = "evaluated",
            ["sources"] = sources.ToString(CultureInfo.InvariantCulture),
            ["files"] = files.Count.ToString(CultureInfo.InvariantCulture),
        }, cancellationToken);
    }


    private sealed record HeldOutInput(string Path, long Bytes, string Sha256);
}

/// <summary>
/// report: report.md + report.json from the needle results and the domain-loss report (when that step evaluated one),
/// with the heatmap beside them. When the experiment names a baseline (<c>gitops.baseline</c>), the newest succeeded run
/// of that experiment in this store supplies the baseline needle results and losses (difference heatmap, Δ columns).
/// Runs as an agent job because it reads the evaluation outputs from the store.
/// </summary>
public sealed class ReportJobHandler(EngineServices services) : IGpuJobHandler
{
    public string Type => "report";

    public async Task<StepOutput> RunAsync(GpuJob job, Action<string> reportProgress, CancellationToken cancellationToken)
    {
        var spec = await EvaluationJobs.ExperimentAsync(services, job, cancellationToken);
        var needleDir = await EvaluationJobs.DownloadAsync(services, EvaluationJobs.InputOfType(job, "evaluate-needle"), GpuJobStep.Version, "needle", cancellationToken);
        DomainLossReport? loss = null;
        if (job.Inputs.Values.FirstOrDefault(o => o.Activity == "evaluate-domain-loss") is { } lossOutput)
        {
            loss = ReadLoss(await EvaluationJobs.DownloadAsync(services, lossOutput, GpuJobStep.Version, "domain-loss", cancellationToken));
        }

        var (baselineRun, baselineNeedle, baselineLoss) = await BaselineAsync(spec.GitOps.Baseline, job.RunId, cancellationToken);
        if (spec.GitOps.Baseline is { } name)
        {
            reportProgress(baselineRun is null ? $"no succeeded run of baseline '{name}' in this store" : $"baseline: run {baselineRun}");
        }

        var output = services.NewScratchDirectory("report");
        var scorer = Workflows.Evaluation.Scoring.NeedleScorers.FromSpec(spec.Evaluation.Needle.Scorer);
        RunReport.Write(output, new RunReportInput(spec.Name, spec.GitOps.Baseline, spec.Model.Base, scorer,
            NeedleResultFiles.ReadDirectory(needleDir), baselineNeedle, loss, baselineLoss, TrainingLength: spec.Data.Context, TokenBudget: spec.Data.TokenBudget));
        var properties = new Dictionary<string, string>();
        if (baselineRun is not null)
        {
            properties["baselineRun"] = baselineRun;
        }

        return await EvaluationJobs.PublishFolderAsync(services, job, output, "report", properties, cancellationToken);
    }

    /// <summary>The newest succeeded run of the baseline experiment: its needle results and loss report (each when it has one).</summary>
    private async Task<(string? Run, IReadOnlyList<NeedleResult>? Needle, DomainLossReport? Loss)> BaselineAsync(string? baseline, string runId, CancellationToken ct)
    {
        if (baseline is null)
        {
            return (null, null, null);
        }

        RunRecord? newest = null;
        await foreach (var run in services.Runs.ListAsync(ct))
        {
            if (run.ExperimentName == baseline && run.Status == RunStatus.Succeeded && run.RunId != runId
                && (newest is null || run.SubmittedAt > newest.SubmittedAt))
            {
                newest = run;
            }
        }

        if (newest is null)
        {
            return (null, null, null);
        }

        IReadOnlyList<NeedleResult>? needle = null;
        DomainLossReport? loss = null;
        if (newest.Steps.FirstOrDefault(s => s.Step == "evaluate-needle")?.OutputPrefix is { } needlePrefix)
        {
            var local = services.NewScratchDirectory("baseline-needle");
            await RunOutputs.DownloadAsync(services, needlePrefix, "needle", local, ct);
            needle = NeedleResultFiles.ReadDirectory(local);
        }

        if (newest.Steps.FirstOrDefault(s => s.Step == "evaluate-domain-loss")?.OutputPrefix is { } lossPrefix)
        {
            var local = services.NewScratchDirectory("baseline-loss");
            await RunOutputs.DownloadAsync(services, lossPrefix, "domain-loss", local, ct);
            loss = ReadLoss(local);
        }

        return (newest.RunId, needle, loss);
    }

    /// <summary>The loss report of a downloaded domain-loss output; null when that step was disabled (no loss.json).</summary>
    private static DomainLossReport? ReadLoss(string folder)
    {
        var file = Path.Combine(folder, DomainLossJson.FileName);
        return File.Exists(file) ? DomainLossJson.Read(file) : null;
    }
}

internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

/// <summary>Every job type a GPU agent of this build can run.</summary>
public static class GpuJobHandlers
{
    public static IReadOnlyList<IGpuJobHandler> All(EngineServices services) =>
        [new TrainJobHandler(services), new NeedleJobHandler(services, Haystack.DefaultDirectory()), new DomainLossJobHandler(services), new ReportJobHandler(services)];
}

/// <summary>Copies the files under <c>folder/</c> of a published step output (by its <c>cas/&lt;activity&gt;/&lt;hash&gt;/</c> prefix) to a local folder, verified.</summary>
public static class RunOutputs
{
    public static async Task<IReadOnlyList<string>> DownloadAsync(EngineServices services, string outputPrefix, string folder, string localFolder, CancellationToken ct = default)
    {
        var parts = outputPrefix.TrimEnd('/').Split('/');
        if (parts.Length != 3 || parts[0] + "/" != ArtifactKey.RootPrefix)
        {
            throw new ArgumentException($"'{outputPrefix}' is not an output prefix (cas/<activity>/<hash>/)");
        }

        var manifest = await services.Manifests.TryGetAsync(ArtifactKey.FromParts(parts[1], GpuJobStep.Version, parts[2]), ct)
                       ?? throw new InvalidDataException($"no published output at {outputPrefix}");
        return await EvaluationJobs.DownloadEntriesAsync(services, manifest, folder + "/", localFolder, ct);
    }
}
