using System.Globalization;
using Workflows.Engine.Steps;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Reports;
using Workflows.Experiments.Templates;
using Workflows.Training;

namespace Workflows.Engine.Jobs;

/// <summary>
/// evaluate-needle, a thin adapter over <see cref="NeedleEvaluation"/>: the trained model (downloaded, verified) on the
/// needle grid; publishes <c>needle/</c> (a result per cell and the heatmap). The haystack is read from outside the
/// store, so its content hash enters the key. An experiment that turns the evaluation off
/// (<c>evaluation.needle.enabled: false</c>) resolves no haystack (its key does not depend on one), downloads no model
/// and gets an empty output marked "disabled", which the report step reads as such.
/// </summary>
public sealed class NeedleJobHandler() : JobHandler<NeedleParameters>(StepContracts.EvaluateNeedle)
{
    public const string OutputFolder = "needle";
    private const string HaystackInput = "haystack";

    protected override Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, NeedleParameters parameters, CancellationToken cancellationToken)
    {
        if (NeedleEvaluation.Disabled(parameters) is not null)
        {
            return Task.FromResult<IReadOnlyList<ExternalInput>>([]);
        }

        var folder = NeedleEvaluation.HaystackDirectory(parameters.Needle, job.Job.ExperimentDirectory);
        return Task.FromResult<IReadOnlyList<ExternalInput>>([new ExternalInput(HaystackInput, Haystack.LoadDirectory(folder).ContentHash, folder)]);
    }

    protected override async Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, NeedleParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        if (NeedleEvaluation.Disabled(parameters) is { } why)
        {
            reportProgress(why);
            return new Dictionary<string, string> { [EvaluationState.Property] = EvaluationState.Disabled };
        }

        // The worker that resolved the haystack may lay out its files differently from this agent (the shipped default
        // lives beside each installation): find it here, and insist on the very bytes the key was made from.
        var resolved = job.Job.External.Single(e => e.Name == HaystackInput);
        var folder = Directory.Exists(resolved.Location) ? resolved.Location : NeedleEvaluation.HaystackDirectory(parameters.Needle, job.Job.ExperimentDirectory);
        if (Haystack.LoadDirectory(folder).ContentHash != resolved.Sha256)
        {
            throw new InvalidDataException($"the haystack in {folder} is not the one the run resolved (content hash {resolved.Sha256[..12]}): resubmit the run");
        }

        var model = await job.DownloadAsync(job.Input(StepContracts.Train.Type)!, TrainingRunner.FinalModelFolder, cancellationToken);
        var evaluation = new NeedleEvaluationJob(parameters, job.Services.Options.ResolveTokenizer(parameters.Tokenizer), model, folder,
            job.OutputFolder(OutputFolder), job.Services.Options.TrainingDevice);
        var result = await Task.Run(() => NeedleEvaluation.Run(evaluation, new SyncProgress<NeedleProgress>(p => reportProgress($"cell {p.Done}/{p.Total}")),
            cancellationToken), cancellationToken);
        return new Dictionary<string, string>
        {
            [EvaluationState.Property] = EvaluationState.Evaluated,
            ["cells"] = result.Cells.Count.ToString(CultureInfo.InvariantCulture),
            ["meanScore"] = result.Mean.ToString("R", CultureInfo.InvariantCulture),
            ["scorer"] = result.Scorer.ToString(),
        };
    }
}

/// <summary>Reports on the caller's thread (<see cref="Progress{T}"/> would post to the thread pool and reorder reports).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
