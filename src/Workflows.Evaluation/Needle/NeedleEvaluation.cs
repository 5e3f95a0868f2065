using TorchSharp;
using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.Heatmaps;
using Workflows.Evaluation.Inference;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Training.Weights;

namespace Workflows.Evaluation.Needle;

/// <summary>A needle evaluation, however it was asked for (<c>wf eval needle</c>, the engine's evaluate-needle step).</summary>
/// <param name="HaystackDirectory">The haystack folder, resolved (<see cref="NeedleEvaluation.HaystackDirectory"/>).</param>
/// <param name="OutputDirectory">Receives one result JSON per cell (a rerun skips finished cells) and heatmap.png.</param>
public sealed record NeedleEvaluationJob(
    NeedleParameters Parameters,
    ITokenizer Tokenizer,
    string ModelDirectory,
    string HaystackDirectory,
    string OutputDirectory,
    string Device);

/// <summary>What a needle evaluation produced.</summary>
public sealed record NeedleEvaluationResult(NeedleRunSummary Summary, IReadOnlyList<NeedleCellSummary> Cells, double Mean, NeedleScoreKind Scorer,
    string Heatmap, long ReusedPrefixTokens);

/// <summary>
/// The one entry point for the needle grid: loads the trained model onto the device, runs every cell with the
/// haystack prefix's KV cache shared by a length's cells, writes a result per cell as it finishes, then the heatmap.
/// <c>wf eval needle</c> and the engine's evaluate-needle handler are thin adapters over it.
/// </summary>
public static class NeedleEvaluation
{
    public const string HeatmapFileName = "heatmap.png";

    /// <summary>
    /// Null when the experiment runs the grid; else the sentence every adapter says instead of running it
    /// (<c>evaluation.needle.enabled: false</c>). The one test of that field: the engine's evaluate-needle handler reads
    /// no haystack and loads no model and publishes an empty output marked disabled, <c>wf eval needle</c> writes
    /// nothing, and <see cref="Run"/> and <see cref="DryRun"/> refuse, so an adapter that forgot to ask fails at once
    /// instead of spending the GPU hours the experiment turned off.
    /// </summary>
    public static string? Disabled(NeedleParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.Needle.Enabled
            ? null
            : $"evaluation.needle.enabled is false for '{parameters.Experiment}': no needle evaluation (no haystack read, no model loaded, no results)";
    }

    /// <summary>The experiment's haystack (relative to <paramref name="baseDirectory"/>), or the shipped samples/haystack.</summary>
    public static string HaystackDirectory(NeedleSpec needle, string baseDirectory) =>
        needle.Haystack is { } folder ? Path.GetFullPath(folder, baseDirectory) : Haystack.DefaultDirectory();

    /// <summary>Builds every prompt and counts prefill tokens with and without prefix reuse; runs no model.</summary>
    public static NeedleRunSummary DryRun(NeedleParameters parameters, ITokenizer tokenizer, string haystackDirectory)
    {
        RefuseDisabled(parameters);
        var setup = Setup(parameters, tokenizer, haystackDirectory);
        return NeedleRunner.DryRun(setup.Builder, setup.Grid);
    }

    public static NeedleEvaluationResult Run(NeedleEvaluationJob job, IProgress<NeedleProgress>? progress, CancellationToken cancellationToken)
    {
        var p = job.Parameters;
        RefuseDisabled(p);
        var setup = Setup(p, job.Tokenizer, job.HaystackDirectory);
        using var model = HuggingFaceCheckpoint.LoadModel(job.ModelDirectory);
        model.to(torch.device(job.Device));
        model.eval();
        using var generator = new TorchGreedyGenerator(model, job.Tokenizer, p.Experiment, ropeScalingLength: NeedleSetup.RopeResetLength(p.Needle, p.TrainingContext));
        var summary = setup.CreateRunner(generator, job.OutputDirectory, p.Needle.MaxNewTokens).Run(setup.Grid, progress, cancellationToken);
        var cells = NeedleAggregation.ByCell(summary.Results, setup.Scorer);
        var heatmap = Path.Combine(job.OutputDirectory, HeatmapFileName);
        NeedleHeatmap.Write(heatmap, cells, new HeatmapOptions(p.Experiment, p.TrainingContext), setup.Scorer.ToString());
        return new NeedleEvaluationResult(summary, cells, cells.Count == 0 ? 0 : cells.Average(c => c.Mean), setup.Scorer, heatmap, generator.ReusedTokens);
    }

    private static void RefuseDisabled(NeedleParameters parameters)
    {
        if (Disabled(parameters) is { } why)
        {
            throw new InvalidOperationException(why);
        }
    }

    private static NeedleSetup Setup(NeedleParameters p, ITokenizer tokenizer, string haystackDirectory) =>
        NeedleSetup.FromSpec(p.Needle with { Haystack = null }, tokenizer, haystackDirectory);
}
