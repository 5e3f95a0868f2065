using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Needle;

/// <summary>Everything a needle evaluation needs, built from an experiment's <see cref="NeedleSpec"/>.</summary>
public sealed record NeedleSetup(NeedlePromptBuilder Builder, NeedleGrid Grid, NeedleScoreKind Scorer, Haystack Haystack, ITokenizer Tokenizer)
{
    /// <summary>
    /// Haystack = <c>spec.Haystack</c> (relative paths against <paramref name="baseDirectory"/>) or
    /// <paramref name="defaultHaystack"/> (the shipped samples/haystack); grid, scorer and <c>fix_bos_leak</c> from the spec.
    /// </summary>
    public static NeedleSetup FromSpec(NeedleSpec spec, ITokenizer tokenizer, string defaultHaystack, string? baseDirectory = null, NeedleTask? task = null, long trialSeed = 15213)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var folder = spec.Haystack is null ? defaultHaystack : Path.GetFullPath(spec.Haystack, baseDirectory ?? Directory.GetCurrentDirectory());
        var haystack = Haystack.LoadDirectory(folder);
        var grid = NeedleGrid.FromSpec(spec);
        var builder = new NeedlePromptBuilder(HfTokenizerBehaviour.For(tokenizer), haystack, task ?? NeedleTask.Paper, grid.Lengths.Max(),
            new NeedleBuildOptions(FixBosLeak: spec.FixBosLeak, TrialSeed: trialSeed));
        return new NeedleSetup(builder, grid, NeedleScorers.FromSpec(spec.Scorer), haystack, tokenizer);
    }

    /// <summary>
    /// The length dynamic-NTK RoPE is fixed at during the needle test: <c>evaluation.needle.rope_reset_length</c>, else
    /// the training context. The paper's code calls <c>reset_rope(model, 81920)</c> for every model, so its 13B-64K
    /// experiment sets 80K explicitly.
    /// </summary>
    public static int RopeResetLength(ExperimentSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return RopeResetLength(spec.Evaluation.Needle, spec.Data.Context);
    }

    /// <summary>The same from the needle section and the training context (what the engine's evaluate-needle step is given).</summary>
    public static int RopeResetLength(NeedleSpec needle, long trainingContext) => checked((int)(needle.RopeResetLength ?? trainingContext));

    /// <summary>A runner writing to <paramref name="outputDirectory"/> with the spec's scorer and max_new_tokens.</summary>
    public NeedleRunner CreateRunner(Inference.IGreedyGenerator generator, string outputDirectory, int maxNewTokens = PaperNeedle.MaxNewTokens) =>
        new(Builder, generator, new NeedleRunOptions(outputDirectory, Scorer, maxNewTokens), Tokenizer.Id, Haystack.ContentHash);
}
