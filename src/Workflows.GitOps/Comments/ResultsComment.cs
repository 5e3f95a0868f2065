using System.Globalization;
using System.Text;
using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Comments;

public enum RunState
{
    Submitted,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

public sealed record ArtifactLink(string Name, Uri Url);

public sealed record StepDuration(string Step, TimeSpan Duration);

/// <summary>
/// What the engine's report step knows about a run, in the shape the PR comment needs. The loss table arrives as
/// Markdown (the evaluation report renders it, baseline columns included); the heatmap as a URL that GitHub can fetch
/// (a blob under a content-hashed name, or a SAS URL): never inline data.
/// </summary>
/// <param name="NeedleDisabled">The experiment disabled the needle evaluation: the comment says so instead of showing no score.</param>
public sealed record RunReport(
    string Experiment,
    string RunId,
    RunState State,
    string? HeadSha = null,
    string? RequestedBy = null,
    Uri? HeatmapUrl = null,
    double? MeanNeedleScore = null,
    string? LossTableMarkdown = null,
    string? Baseline = null,
    IReadOnlyList<ArtifactLink>? Artifacts = null,
    IReadOnlyList<StepDuration>? Durations = null,
    TimeSpan? Total = null,
    string? Error = null,
    Uri? DetailsUrl = null,
    string? NeedleTableMarkdown = null,
    string? ComparisonMarkdown = null,
    string? Haystack = null,
    string? EffectiveLength = null,
    bool NeedleDisabled = false)
{
    /// <summary>The commit status a run's state maps to: pending while it runs, then success, failure or error.</summary>
    public CommitStatusState StatusState => State switch
    {
        RunState.Submitted or RunState.Running => CommitStatusState.Pending,
        RunState.Succeeded => CommitStatusState.Success,
        RunState.Failed => CommitStatusState.Failure,
        _ => CommitStatusState.Error,
    };

    public string StatusDescription => State switch
    {
        RunState.Submitted => $"run {RunId} submitted",
        RunState.Running => $"run {RunId} running",
        RunState.Succeeded => MeanNeedleScore is { } s
            ? string.Create(CultureInfo.InvariantCulture, $"run {RunId} succeeded, mean needle score {s:0.000}")
            : NeedleDisabled ? $"run {RunId} succeeded (needle evaluation disabled)" : $"run {RunId} succeeded",
        RunState.Failed => $"run {RunId} failed",
        _ => $"run {RunId} cancelled",
    };
}

/// <summary>Renders the run section of an experiment's sticky comment.</summary>
public static class ResultsComment
{
    public static string Render(RunReport r)
    {
        if (r.HeatmapUrl is { } url && url.Scheme is not ("https" or "http"))
        {
            // data: URIs do not render in GitHub comments and would blow the 65,536-character limit.
            throw new ArgumentException($"heatmap URL must be http(s), not '{url.Scheme}:': publish the image to blob storage and pass its URL", nameof(r));
        }

        var sb = new StringBuilder();
        var state = r.State.ToString().ToLowerInvariant();
        sb.Append(CultureInfo.InvariantCulture, $"### Experiment {Md.Code(r.Experiment)}: run {Md.Code(r.RunId)} {state}\n\n");
        if (r.State is RunState.Submitted or RunState.Running)
        {
            var by = r.RequestedBy is null ? "" : $" by {Md.Code(r.RequestedBy)}";
            var at = r.HeadSha is null ? "" : $" for commit {Md.Code(Md.ShortSha(r.HeadSha))}";
            sb.Append(CultureInfo.InvariantCulture,
                $"{(r.State == RunState.Submitted ? "Submitted" : "Running")}{by}{at}. This comment is updated when the run finishes; the status **{GitHubRepoClient.StatusContext(r.Experiment)}** shows progress.\n");
            return sb.ToString();
        }

        sb.Append("| | |\n|---|---|\n");
        sb.Append(CultureInfo.InvariantCulture, $"| run | {Md.Code(r.RunId)} |\n");
        if (r.HeadSha is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| commit | {Md.Code(Md.ShortSha(r.HeadSha))} |\n");
        }

        if (r.RequestedBy is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| requested by | {Md.Code(r.RequestedBy)} |\n");
        }

        if (r.MeanNeedleScore is { } score)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| mean needle score | {score:0.000} |\n");
        }
        else if (r.NeedleDisabled)
        {
            sb.Append("| needle in a haystack | disabled (`evaluation.needle.enabled: false`) |\n");
        }

        if (r.EffectiveLength is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| effective length | {Md.Text(r.EffectiveLength)} |\n");
        }

        if (r.Haystack is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| haystack | {Md.Text(r.Haystack)} |\n");
        }

        var durations = r.Durations ?? [];
        var total = r.Total ?? (durations.Count > 0 ? durations.Aggregate(TimeSpan.Zero, (a, d) => a + d.Duration) : null);
        if (total is { } t)
        {
            var steps = durations.Count == 0 ? "" : " (" + string.Join(" · ", durations.Select(d => $"{Md.Text(d.Step)} {Md.Duration(d.Duration)}")) + ")";
            sb.Append(CultureInfo.InvariantCulture, $"| duration | {Md.Duration(t)}{steps} |\n");
        }

        if (r.DetailsUrl is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| details | [run report]({Md.Url(r.DetailsUrl)}) |\n");
        }

        sb.Append('\n');
        if (r.Error is not null)
        {
            sb.Append("#### Error\n\n").Append(Md.Block(r.Error)).Append("\n\n");
        }

        if (r.HeatmapUrl is not null)
        {
            sb.Append("#### Needle in a haystack\n\n");
            sb.Append(CultureInfo.InvariantCulture, $"![needle-in-a-haystack heatmap of {r.Experiment}]({Md.Url(r.HeatmapUrl)})\n\n");
        }

        if (!string.IsNullOrWhiteSpace(r.NeedleTableMarkdown))
        {
            sb.Append(r.NeedleTableMarkdown.Trim('\n')).Append("\n\n");
        }

        if (!string.IsNullOrWhiteSpace(r.LossTableMarkdown))
        {
            var vs = r.Baseline is null ? "" : $" vs {Md.Code(r.Baseline)}";
            sb.Append(CultureInfo.InvariantCulture, $"#### Loss by domain and length{vs}\n\n");
            sb.Append(r.LossTableMarkdown.Trim('\n')).Append("\n\n");
        }

        if (!string.IsNullOrWhiteSpace(r.ComparisonMarkdown))
        {
            sb.Append("#### Compared with the archived run\n\n");
            sb.Append(r.ComparisonMarkdown.Trim('\n')).Append("\n\n");
        }

        if (r.Artifacts is { Count: > 0 } artifacts)
        {
            sb.Append("#### Artifacts\n\n");
            foreach (var a in artifacts)
            {
                sb.Append(CultureInfo.InvariantCulture, $"- [{Md.Text(a.Name)}]({Md.Url(a.Url)})\n");
            }

            sb.Append('\n');
        }

        return sb.ToString().TrimEnd('\n') + "\n";
    }
}
