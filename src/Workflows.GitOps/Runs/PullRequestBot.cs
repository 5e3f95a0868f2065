using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Guard;

namespace Workflows.GitOps.Runs;

/// <summary>
/// A trigger as the workflow sees it: <c>github.event_name</c>, <c>github.event.action</c>, <c>github.actor</c> (for
/// comments: the comment's author), the PR number, the comment body or the label, and an id for the trigger.
/// <see cref="RequestedAt"/>: when the <c>/run</c> comment was written (<c>github.event.comment.created_at</c>); a push to
/// the branch after it is refused. <see cref="ApprovedHeadSha"/>: the head the trigger saw (for the label handover,
/// <c>github.event.workflow_run.head_sha</c>). <see cref="RequireOtherApprover"/>: the repository's two-person rule.
/// </summary>
public sealed record TriggerContext(
    string EventName,
    string? Action,
    string Actor,
    int? PullRequest,
    string? CommentBody = null,
    string? Label = null,
    string TriggerId = "",
    string RunLabel = RunGuard.DefaultRunLabel,
    string? ExpectedHeadSha = null,
    DateTimeOffset? RequestedAt = null,
    string? ApprovedHeadSha = null,
    bool RequireOtherApprover = false);

public sealed record SubmittedExperiment(string Experiment, SubmittedRun Run, StickyCommentResult Comment);

/// <param name="Requester">Who asked for the run: the commenter, or for the label handover whoever added the label.</param>
/// <param name="ExperimentFiles">The PR's experiment files, name → repository path (read once, by the guard).</param>
public sealed record TriggerOutcome(
    GuardDecision Decision,
    IReadOnlyList<SubmittedExperiment> Submitted,
    PullRequestInfo? PullRequest = null,
    string? Requester = null,
    IReadOnlyDictionary<string, string>? ExperimentFiles = null);

/// <summary>
/// The pull-request side of an experiment's life: plan comments, the /run trigger, the results report. Every write
/// goes to the experiment's one sticky comment (its own section of it) and to the commit status
/// <c>wf/experiment/NAME</c> on the head SHA.
/// </summary>
public sealed class PullRequestBot(GitHubRepoClient github, string? botLogin = null)
{
    public GitHubRepoClient GitHub { get; } = github;

    /// <summary>Sets the plan section of each experiment's comment (creates the comment on first use).</summary>
    public async Task<IReadOnlyList<StickyCommentResult>> PostPlansAsync(int pullRequest, IEnumerable<PlanCommentInput> plans)
    {
        var results = new List<StickyCommentResult>();
        foreach (var plan in plans)
        {
            results.Add(await GitHub.UpsertSectionAsync(pullRequest, plan.Experiment, CommentSections.Plan, PlanComment.Render(plan), botLogin).ConfigureAwait(false));
        }

        return results;
    }

    /// <summary>
    /// Sets the run section of the experiment's comment and the commit status on the run's head SHA. Idempotent: the
    /// same report twice changes nothing the second time but re-sends the status (GitHub keeps the latest per context).
    /// </summary>
    public async Task<StickyCommentResult> ReportAsync(int pullRequest, RunReport report)
    {
        var comment = await GitHub.UpsertSectionAsync(pullRequest, report.Experiment, CommentSections.Run, ResultsComment.Render(report), botLogin).ConfigureAwait(false);
        await SetStatusAsync(report.HeadSha, report.Experiment, report.StatusState, report.StatusDescription, report.DetailsUrl, comment).ConfigureAwait(false);
        return comment;
    }

    /// <summary>The commit status on the head SHA (none without one), linking the details URL or else the comment.</summary>
    private async Task SetStatusAsync(string? headSha, string experiment, CommitStatusState state, string description, Uri? detailsUrl, StickyCommentResult comment)
    {
        if (headSha is not null)
        {
            var target = detailsUrl ?? (Uri.TryCreate(comment.HtmlUrl, UriKind.Absolute, out var u) ? u : null);
            await GitHub.SetCommitStatusAsync(headSha, experiment, state, description, target).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sets the run section of a sweep file's comment (every variant and their comparison) and the sweep's commit status,
    /// pending until every variant has finished. Idempotent like <see cref="ReportAsync"/>.
    /// </summary>
    public async Task<StickyCommentResult> ReportSweepAsync(int pullRequest, SweepReport report)
    {
        var comment = await GitHub.UpsertSectionAsync(pullRequest, report.Sweep, CommentSections.Run, SweepComment.Render(report), botLogin).ConfigureAwait(false);
        await SetStatusAsync(report.HeadSha, report.Sweep, report.StatusState, report.StatusDescription, report.DetailsUrl, comment).ConfigureAwait(false);
        return comment;
    }

    /// <summary>
    /// Reads what the guard needs from the API and decides; writes nothing (<c>wf pr guard</c>). Only a possible run
    /// request costs API calls (PR, its files, then the actor's permission unless the PR is a fork; for a <c>/run</c> with
    /// a request time, the branch's push log; for the label handover, who added the label); an ordinary comment or a
    /// plan event is decided from the trigger alone.
    /// </summary>
    public async Task<TriggerOutcome> DecideAsync(TriggerContext trigger)
    {
        var input = new GuardInput(trigger.EventName, trigger.Action, trigger.Actor, RepoPermission.None,
            CommentBody: trigger.CommentBody, Label: trigger.Label, RunLabel: trigger.RunLabel, ExpectedHeadSha: trigger.ExpectedHeadSha,
            ApprovedHeadSha: trigger.ApprovedHeadSha, RequireOtherApprover: trigger.RequireOtherApprover);
        if (!MayBeRunRequest(trigger) || trigger.PullRequest is not { } number)
        {
            return new TriggerOutcome(RunGuard.Decide(input), []);
        }

        var pr = await GitHub.GetPullRequestAsync(number).ConfigureAwait(false);
        var files = await GitHub.ListChangedFilesAsync(number).ConfigureAwait(false);
        input = input with { PullRequest = pr, ChangedExperiments = RunGuard.ExperimentsIn(files), DuplicateExperiments = RunGuard.DuplicateNames(files) };
        if (pr.IsFork)
        {
            return new TriggerOutcome(RunGuard.Decide(input), [], pr); // refused before anything else is asked
        }

        if (trigger.EventName == "workflow_run")
        {
            // The label handover: the label must still be there, and the run is asked for by whoever added it.
            if (!pr.Labels.Contains(trigger.RunLabel))
            {
                return new TriggerOutcome(RunGuard.Decide(input with { Label = null }), [], pr);
            }

            var labeler = await GitHub.GetLastLabelerAsync(number, trigger.RunLabel).ConfigureAwait(false);
            if (labeler is null)
            {
                return new TriggerOutcome(GuardDecision.Refuse($"no labeled event for '{trigger.RunLabel}' on pull request #{number}: cannot tell who asked for the run"), [], pr);
            }

            input = input with { Actor = labeler, Label = trigger.RunLabel };
        }
        else if (trigger.EventName == "issue_comment" && trigger.RequestedAt is { } requestedAt && RunGuard.ParseRunCommand(trigger.CommentBody).Sha is null)
        {
            // Pin the commit the comment saw: any push to the branch after the comment was written is not approved.
            try
            {
                var activity = await GitHub.ListBranchActivityAsync(pr.HeadRef).ConfigureAwait(false);
                input = input with { PushedAfterRequest = activity.Where(a => a.Timestamp > requestedAt).Select(a => (DateTimeOffset?)a.Timestamp).Min() };
            }
            catch (Octokit.ApiException e)
            {
                return new TriggerOutcome(GuardDecision.Refuse(
                    $"cannot read the branch's push log (repository activity API: {(int)e.StatusCode}) to pin the commit the /run comment saw: approve the exact commit with /run @{pr.HeadSha[..7]}"), [], pr);
            }
        }

        var permission = await GitHub.GetPermissionAsync(input.Actor).ConfigureAwait(false);
        var experimentFiles = RunGuard.ExperimentFiles(files).GroupBy(f => f.Name).ToDictionary(g => g.Key, g => g.First().Path, StringComparer.Ordinal);
        return new TriggerOutcome(RunGuard.Decide(input with { ActorPermission = permission }), [], pr, input.Actor, experimentFiles);
    }

    /// <summary>
    /// <see cref="DecideAsync"/>, then on Run: submits each experiment, marks its status pending and says so in its
    /// comment (<c>wf pr submit</c>). A label trigger is removed afterwards, so adding it again asks for another run.
    /// <paramref name="experimentPath"/> maps a changed file's repository path (e.g. <c>experiments/smoke.yaml</c>) to
    /// where the approved head's copy is read. An experiment file that asks for the two-person rule
    /// (<c>gitops: { require_other_approver: true }</c>) gets it even when the repository does not.
    /// </summary>
    public async Task<TriggerOutcome> HandleTriggerAsync(TriggerContext trigger, IRunSubmitter submitter, Func<string, string> experimentPath, CancellationToken cancellationToken = default)
    {
        var decided = await DecideAsync(trigger).ConfigureAwait(false);
        if (decided.Decision.Verdict != GuardVerdict.Run || decided.PullRequest is not { } pr)
        {
            return decided;
        }

        var files = decided.ExperimentFiles ?? new Dictionary<string, string>();
        var paths = decided.Decision.Experiments.ToDictionary(e => e, e => experimentPath(files.GetValueOrDefault(e) ?? $"experiments/{e}.yaml"));
        var requester = decided.Requester ?? trigger.Actor;
        if (!trigger.RequireOtherApprover && string.Equals(requester, pr.Author, StringComparison.OrdinalIgnoreCase)
            && paths.FirstOrDefault(p => ExperimentGitOps.RequiresOtherApprover(p.Value)) is { Key: { } strict })
        {
            return decided with
            {
                Decision = GuardDecision.Refuse(
                    $"{strict} sets gitops.require_other_approver: {requester} wrote pull request #{pr.Number}, so another maintainer must ask for the run"),
            };
        }

        var submitted = new List<SubmittedExperiment>();
        foreach (var experiment in decided.Decision.Experiments)
        {
            var request = new RunRequest(experiment, paths[experiment], GitHub.Repository, pr.Number, pr.HeadSha, pr.Author, requester, trigger.TriggerId);
            var run = await submitter.SubmitAsync(request, cancellationToken).ConfigureAwait(false);
            var comment = run.Sweep is { } sweep
                ? await ReportSweepAsync(pr.Number, sweep).ConfigureAwait(false)
                : await ReportAsync(pr.Number, new RunReport(experiment, run.RunId, RunState.Submitted, pr.HeadSha, requester, DetailsUrl: run.DetailsUrl)).ConfigureAwait(false);
            submitted.Add(new SubmittedExperiment(experiment, run, comment));
        }

        if (trigger.EventName is "pull_request" or "workflow_run")
        {
            await GitHub.RemoveLabelAsync(pr.Number, trigger.RunLabel).ConfigureAwait(false);
        }

        return decided with { Submitted = submitted };
    }

    private static bool MayBeRunRequest(TriggerContext t) => t.EventName switch
    {
        "issue_comment" => t.Action == "created" && RunGuard.ParseRunCommand(t.CommentBody).Names is not null && !t.Actor.EndsWith("[bot]", StringComparison.Ordinal),
        "pull_request" => t.Action == "labeled" && t.Label == t.RunLabel && !t.Actor.EndsWith("[bot]", StringComparison.Ordinal),
        "workflow_run" => t.Action == "completed",
        _ => false,
    };
}
