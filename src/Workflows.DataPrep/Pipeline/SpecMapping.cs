using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;

namespace Workflows.DataPrep.Pipeline;

/// <summary>
/// Turns an experiment's <c>data</c> section into data-prep options. Upsample weights are computed by the same
/// function the planner uses (<see cref="Planner.UpsampledWeights"/>), so the plan and the prepared data agree.
/// </summary>
public static class SpecMapping
{
    public static DataPrepOptions ToDataPrepOptions(ExperimentSpec spec, ITokenizer tokenizer) =>
        ToDataPrepOptions(PrepareDataParameters.From(spec), tokenizer);

    /// <summary>The options from prepare-data's parameters: what <c>wf prep</c> and the engine's step both run with.</summary>
    public static DataPrepOptions ToDataPrepOptions(PrepareDataParameters data, ITokenizer tokenizer)
    {
        var up = data.Upsampling;
        var mix = data.Mix.Resolve();
        var mode = up.Mode switch
        {
            UpsamplingMode.None => SelectionMode.Original,
            UpsamplingMode.Cut => SelectionMode.CutAt4K,
            UpsamplingMode.Global => SelectionMode.Global,
            UpsamplingMode.PerSource => SelectionMode.PerSource,
            UpsamplingMode.Upsample => SelectionMode.Upsample,
            _ => throw new ArgumentOutOfRangeException(nameof(data), up.Mode, "unknown upsampling mode"),
        };

        IReadOnlyDictionary<SlimPajamaSource, double>? upsampleWeights = null;
        if (up.Mode == UpsamplingMode.Upsample && up.Sources is { Count: > 0 } boosted)
        {
            // Final weights already include the boost; no further replacement in the selection step.
            mix = Planner.UpsampledWeights(mix, boosted, up.BoostWeight, up.TargetShare);
            upsampleWeights = new Dictionary<SlimPajamaSource, double>();
        }

        return new DataPrepOptions
        {
            Mode = mode,
            TokenBudget = data.TokenBudget,
            Mix = mix,
            UpsampleWeights = upsampleWeights,
            LongThreshold = checked((int)up.LongThreshold),
            ShortKeepRatio = up.ShortKeepRatio,
            TargetLongFraction = up.TargetLongFraction,
            LengthMeasure = up.LengthMeasure == Experiments.Spec.LengthMeasure.Tokens ? Selection.LengthMeasure.ExactTokens : Selection.LengthMeasure.EstimatedFromChars,
            CharsPerToken = up.CharsPerToken,
            CutLength = checked((int)up.CutLength),
            Overflow = data.BudgetRule == BudgetRule.Paper ? BudgetOverflow.Overshoot : BudgetOverflow.Truncate,
            Seed = (ulong)data.Seed,
            ContextLength = checked((int)data.Context),

            // LLaMA: BOS per document, no EOS (the released code through HF defaults). A vocabulary without BOS
            // (GPT-2) separates documents with its end-of-text token instead, so documents stay distinguishable.
            BosPerDocument = tokenizer.BosId is not null,
            EosPerDocument = tokenizer.BosId is null && tokenizer.EosId is not null,
        };
    }

    /// <summary>Input paths of the experiment, relative to the experiment file's folder.</summary>
    public static IReadOnlyList<string> InputPaths(ExperimentSpec spec, string experimentFile) =>
        (spec.Data.Paths ?? []).Select(p => Path.GetFullPath(p, Path.GetDirectoryName(Path.GetFullPath(experimentFile))!)).ToList();
}
