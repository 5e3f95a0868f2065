using System.Globalization;
using Workflows.Artifacts.Corpora;
using Workflows.DataPrep.Corpus;
using Workflows.Engine.Corpora;
using Workflows.Engine.Steps;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Reports;
using Workflows.Experiments.Templates;
using Workflows.Training;

namespace Workflows.Engine.Jobs;

/// <summary>
/// evaluate-domain-loss, a thin adapter over <see cref="DomainLossRunner"/>: the trained model over the held-out files
/// (<c>evaluation.domain_loss.paths</c>, relative to the experiment, or the registered corpus <c>.corpus</c>),
/// published as <c>domain-loss/loss.json</c> and <c>inputs.json</c>. The held-out files are resolved with their
/// SHA-256 before the cache check (they enter the key) and must still have it when read. An experiment that turns
/// the evaluation off gets an empty output marked "disabled"; one that enables it without held-out data fails
/// saying so, never with a made-up number.
/// </summary>
public sealed class DomainLossJobHandler() : JobHandler<DomainLossParameters>(StepContracts.EvaluateDomainLoss)
{
    public const string OutputFolder = "domain-loss";
    /// <summary>External inputs are named held-out:KEY (a local file) or held-out:corpus:NAME/KEY (a registered corpus's file).</summary>
    private const string HeldOut = "held-out:";
    private const string FromCorpus = HeldOut + "corpus:";

    protected override async Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, DomainLossParameters parameters, CancellationToken cancellationToken)
    {
        var loss = parameters.DomainLoss;
        if (!loss.Enabled)
        {
            return [];
        }

        if (loss.Paths is { Count: > 0 } paths)
        {
            return [.. InputFile.Discover([.. paths.Select(p => Path.GetFullPath(p, job.Job.ExperimentDirectory))])
                .Select(f => new ExternalInput(HeldOut + f.Key, CorpusMeasurer.Sha256Of(f.Path), f.Path, new FileInfo(f.Path).Length))];
        }

        if (loss.Corpus is { } corpus)
        {
            return [.. (await CorpusInputs.ResolveAsync(job.Services, corpus, cancellationToken))
                .Select(f => new ExternalInput($"{FromCorpus}{corpus}/{f.Key}", f.Sha256, f.Key, f.Bytes))];
        }

        throw new InvalidOperationException(
            "evaluation.domain_loss is enabled but names no held-out data: set evaluation.domain_loss.paths (local files) or .corpus (registered with wf corpus upload), or set enabled: false");
    }

    protected override async Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, DomainLossParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        var output = job.OutputFolder(OutputFolder);
        if (!parameters.DomainLoss.Enabled)
        {
            return new Dictionary<string, string> { [EvaluationState.Property] = EvaluationState.Disabled };
        }

        var files = new List<InputFile>();
        foreach (var input in job.Job.External)
        {
            // A registered corpus's files come from the store into this machine's cache, verified against their SHA-256.
            files.Add(input.Name.StartsWith(FromCorpus, StringComparison.Ordinal)
                ? new InputFile(await CorpusInputs.LocalPathAsync(job.Services, new CorpusFile(input.Location, input.Sha256, input.Bytes), cancellationToken), input.Name[HeldOut.Length..])
                : new InputFile(input.Location, input.Name[HeldOut.Length..]));
        }

        var model = await job.DownloadAsync(job.Input(StepContracts.Train.Type)!, TrainingRunner.FinalModelFolder, cancellationToken);
        var evaluation = new DomainLossJob(parameters, job.Services.Options.ResolveTokenizer(parameters.Tokenizer), model, files, output,
            job.Services.Options.TrainingDevice);
        var result = await Task.Run(() => DomainLossRunner.Run(evaluation, new SyncProgress<string>(reportProgress), cancellationToken), cancellationToken);
        var changed = result.Files.Zip(job.Job.External).Where(p => p.First.Sha256 != p.Second.Sha256).Select(p => p.First.Key).ToList();
        if (changed.Count > 0)
        {
            throw new InvalidDataException($"held-out file(s) changed since the run resolved them: {string.Join(", ", changed)}; resubmit the run");
        }

        return new Dictionary<string, string>
        {
            [EvaluationState.Property] = EvaluationState.Evaluated,
            ["sources"] = result.Report.Buckets.Select(b => b.Source).Distinct().Count().ToString(CultureInfo.InvariantCulture),
            ["files"] = files.Count.ToString(CultureInfo.InvariantCulture),
        };
    }
}
