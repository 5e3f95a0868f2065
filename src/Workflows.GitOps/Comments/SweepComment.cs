using System.Globalization;
using System.Text;
using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Comments;

/// <summary>One variant of a sweep on the PR: its run and state (null: never submitted), and its headline numbers once it succeeded.</summary>
/// <param name="NeedleDisabled">The variant's experiment disabled the needle evaluation: its score shows as "disabled".</param>
public sealed record SweepVariantState(
    int Index,
    string Variant,
    string RunId,
    RunState? State,
    string Values,
    double? MeanNeedleScore = null,
    string? EffectiveLength = null,
    TimeSpan? Duration = null,
    string? Error = null,
    bool NeedleDisabled = false)
{
    public bool IsFinished => State is null or RunState.Succeeded or RunState.Failed or RunState.Cancelled;
}

/// <summary>
/// A sweep's results for its sticky comment: every variant's state and, once some have succeeded, the comparison
/// (rendered by the evaluation's comparison, images by URL). The commit status <c>wf/experiment/SWEEP</c> stays
/// pending until every variant has finished.
/// </summary>
public sealed record SweepReport(
    string Sweep,
    string SweepId,
    IReadOnlyList<SweepVariantState> Variants,
    string? HeadSha = null,
    string? RequestedBy = null,
    string? ComparisonMarkdown = null,
    Uri? DetailsUrl = null)
{
    public int Finished => Variants.Count(v => v.IsFinished);
    public int Succeeded => Variants.Count(v => v.State == RunState.Succeeded);
    public bool IsFinished => Finished == Variants.Count;

    public CommitStatusState StatusState => !IsFinished ? CommitStatusState.Pending
        : Succeeded == Variants.Count ? CommitStatusState.Success
        : Variants.Any(v => v.State is RunState.Failed or null) ? CommitStatusState.Failure
        : CommitStatusState.Error;

    public string StatusDescription
    {
        get
        {
            if (!IsFinished)
            {
                return $"sweep {SweepId}: {Finished} of {Variants.Count} variants finished";
            }

            var best = Variants.Where(v => v.MeanNeedleScore is not null).MaxBy(v => v.MeanNeedleScore);
            var bestText = best is null ? "" : string.Create(CultureInfo.InvariantCulture, $", best mean needle score {best.MeanNeedleScore:0.000} ({best.Variant})");
            return $"sweep {SweepId}: {Succeeded} of {Variants.Count} variants succeeded{bestText}";
        }
    }
}

/// <summary>Renders the run section of a sweep's sticky comment.</summary>
public static class SweepComment
{
    public static string Render(SweepReport r)
    {
        var sb = new StringBuilder();
        var n = r.Variants.Count;
        var headline = r.IsFinished
            ? $"all {n} variants finished ({Outcome(r)})"
            : r.Finished == 0 && r.Variants.All(v => v.State == RunState.Submitted) ? $"{n} variants submitted" : $"{r.Finished} of {n} variants finished";
        sb.Append(CultureInfo.InvariantCulture, $"### Sweep {Md.Code(r.Sweep)}: {headline}\n\n");
        var by = r.RequestedBy is null ? "" : $" requested by {Md.Code(r.RequestedBy)}";
        var at = r.HeadSha is null ? "" : $" for commit {Md.Code(Md.ShortSha(r.HeadSha))}";
        sb.Append(CultureInfo.InvariantCulture, $"Sweep {Md.Code(r.SweepId)}{at}{by}: one run per variant, each cached and compared on its own.");
        sb.Append(r.IsFinished
            ? "\n\n"
            : $" This comment is updated as variants finish; the status **{GitHubRepoClient.StatusContext(r.Sweep)}** stays pending until all have.\n\n");

        sb.Append("| # | variant | values | run | state | mean needle score | effective length | duration |\n|---:|---|---|---|---|---:|---|---:|\n");
        foreach (var v in r.Variants)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"| {v.Index} | {Md.Code(v.Variant)} | {Md.Text(v.Values)} | {Md.Code(v.RunId)} | {State(v)} | {(v.NeedleDisabled ? "disabled" : v.MeanNeedleScore is { } m ? m.ToString("0.000", CultureInfo.InvariantCulture) : "–")} | {(v.EffectiveLength is null ? "–" : Md.Text(v.EffectiveLength))} | {(v.Duration is { } d ? Md.Duration(d) : "–")} |\n");
        }

        foreach (var v in r.Variants.Where(v => v.Error is not null))
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n{Md.Code(v.Variant)} {State(v)}:\n\n").Append(Md.Block(v.Error!)).Append('\n');
        }

        if (!string.IsNullOrWhiteSpace(r.ComparisonMarkdown))
        {
            sb.Append(r.IsFinished ? "\n#### Comparison\n\n" : $"\n#### Comparison so far ({r.Succeeded} of {n} succeeded)\n\n");
            sb.Append(r.ComparisonMarkdown.Trim('\n')).Append('\n');
        }

        if (r.DetailsUrl is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\n[details]({Md.Url(r.DetailsUrl)})\n");
        }

        return sb.ToString().TrimEnd('\n') + "\n";
    }

    private static string State(SweepVariantState v) => v.State is { } s ? s.ToString().ToLowerInvariant() : "not submitted";

    private static string Outcome(SweepReport r)
    {
        var parts = r.Variants.GroupBy(v => v.State is { } s ? s.ToString().ToLowerInvariant() : "not submitted")
            .Select(g => $"{g.Count()} {g.Key}");
        return string.Join(", ", parts);
    }
}
