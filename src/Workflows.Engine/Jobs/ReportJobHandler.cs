using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Reports;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Jobs;

/// <summary>
/// report, a thin adapter over <see cref="RunReport"/>: report.md, report.json and heatmaps from the evaluations'
/// outputs. When the experiment names a baseline, the newest succeeded run of that experiment in this store is
/// resolved before the cache check (its evaluation outputs' content hashes enter the key, so a newer baseline run
/// gives a new report) and supplies the difference heatmap and the Δ columns. An evaluation the experiment disabled
/// (its output is empty and marked "disabled") is reported as disabled, and a baseline's disabled evaluation is no
/// baseline for it. Needs no GPU: it runs on a worker.
/// </summary>
public sealed class ReportJobHandler() : JobHandler<ReportParameters>(StepContracts.Report)
{
    public const string OutputFolder = "report";
    private const string BaselinePrefix = "baseline:";

    protected override async Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, ReportParameters parameters, CancellationToken cancellationToken)
    {
        if (parameters.Baseline is not { } baseline)
        {
            return [];
        }

        RunRecord? newest = null;
        await foreach (var run in job.Services.Runs.ListAsync(cancellationToken))
        {
            if (run.ExperimentName == baseline && run.Status == RunStatus.Succeeded && run.RunId != job.Job.RunId
                && (newest is null || run.SubmittedAt > newest.SubmittedAt))
            {
                newest = run;
            }
        }

        var found = new List<ExternalInput>();
        foreach (var type in new[] { StepContracts.EvaluateNeedle.Type, StepContracts.EvaluateDomainLoss.Type })
        {
            if (newest?.Steps.FirstOrDefault(s => s.Type == type)?.OutputPrefix is { } prefix
                && await job.Services.Manifests.TryGetAsync(ArtifactKey.FromParts(type, StepOutputs.Version, prefix.TrimEnd('/').Split('/')[^1]), cancellationToken) is { } manifest
                && !EvaluationState.IsDisabled(manifest.Properties))
            {
                found.Add(new ExternalInput(BaselinePrefix + type, manifest.ContentHash, prefix));
            }
        }

        return found;
    }

    protected override async Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, ReportParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        var needle = await EvaluationAsync(job, job.Input(StepContracts.EvaluateNeedle.Type)!, NeedleJobHandler.OutputFolder, cancellationToken);
        var loss = job.Input(StepContracts.EvaluateDomainLoss.Type) is { } lossOutput
                   && await EvaluationAsync(job, lossOutput, DomainLossJobHandler.OutputFolder, cancellationToken) is { } lossFolder
            ? LossFile(lossFolder)
            : null;
        var baselineNeedle = await BaselineAsync(job, StepContracts.EvaluateNeedle.Type, NeedleJobHandler.OutputFolder, cancellationToken);
        var baselineLoss = await BaselineAsync(job, StepContracts.EvaluateDomainLoss.Type, DomainLossJobHandler.OutputFolder, cancellationToken);
        if (parameters.Baseline is { } name)
        {
            reportProgress(baselineNeedle is null && baselineLoss is null
                ? $"no results of baseline '{name}' in this store (no succeeded run, or its evaluations were disabled)"
                : $"baseline '{name}'{(baselineNeedle is null ? " (no needle results)" : "")}{(baselineLoss is null ? " (no loss results)" : "")}");
        }

        if (needle is null)
        {
            reportProgress("the needle evaluation was disabled: the report says so");
        }

        RunReport.Write(job.OutputFolder(OutputFolder), parameters,
            new ReportSources(needle, loss, baselineNeedle, baselineLoss is null ? null : LossFile(baselineLoss)));
        return new Dictionary<string, string>();
    }

    /// <summary>An evaluation's output downloaded (verified) into a local folder; null when the experiment disabled that evaluation.</summary>
    private static async Task<string?> EvaluationAsync(JobContext job, StepOutput output, string folder, CancellationToken cancellationToken)
    {
        var manifest = await job.Services.Manifests.TryGetAsync(StepOutputs.KeyOf(output), cancellationToken)
                       ?? throw new InvalidDataException($"the output of step '{output.Step}' ({output.Prefix}) is not in the store");
        return EvaluationState.IsDisabled(manifest.Properties) ? null : await job.DownloadAsync(output, folder, cancellationToken);
    }

    /// <summary>A baseline run's output resolved before the cache check, downloaded (verified) into a folder keyed by its content hash.</summary>
    private static async Task<string?> BaselineAsync(JobContext job, string type, string folder, CancellationToken cancellationToken)
    {
        if (job.Job.External.FirstOrDefault(e => e.Name == BaselinePrefix + type) is not { } input)
        {
            return null;
        }

        var local = job.Services.CacheFolder("baseline-" + type, input.Sha256);
        await StepOutputs.DownloadAsync(job.Services, input.Location, folder, local, cancellationToken);
        return local;
    }

    /// <summary>The loss report of a downloaded domain-loss output; null when that step was disabled (no loss.json).</summary>
    private static string? LossFile(string folder)
    {
        var file = Path.Combine(folder, DomainLossJson.FileName);
        return File.Exists(file) ? file : null;
    }
}
