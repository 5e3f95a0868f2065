namespace Workflows.Evaluation.Reports;

/// <summary>
/// Whether an evaluation ran, in one vocabulary for everything that records it: the <c>state</c> property of the
/// engine's evaluate-needle and evaluate-domain-loss outputs (an experiment that sets <c>enabled: false</c> gets an
/// empty output marked <see cref="Disabled"/>), <c>needle.state</c> in report.json, and what the comparisons and PR
/// comments show. Reports written before the field existed have needle numbers and no state: they read as evaluated.
/// </summary>
public static class EvaluationState
{
    /// <summary>The name of the property (in an output's manifest, and in report.json's needle object).</summary>
    public const string Property = "state";

    public const string Evaluated = "evaluated";

    /// <summary>The experiment turned the evaluation off: nothing was read or computed, and there are no numbers.</summary>
    public const string Disabled = "disabled";

    /// <summary>Whether an output's manifest properties mark it disabled (null properties: an output of a step that predates the mark).</summary>
    public static bool IsDisabled(IReadOnlyDictionary<string, string>? properties) =>
        properties is not null && properties.TryGetValue(Property, out var state) && state == Disabled;
}
