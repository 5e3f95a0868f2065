using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Runs;

/// <summary>
/// A run the pull-request bot asks the engine for. <see cref="ExperimentPath"/> is the file at <see cref="HeadSha"/>
/// (the workflow has it on disk as data); <see cref="TriggerId"/> identifies the trigger (comment id, or label event
/// and workflow run id) so a submitter can make a redelivered trigger a no-op.
/// </summary>
public sealed record RunRequest(
    string Experiment,
    string ExperimentPath,
    RepoRef Repository,
    int PullRequest,
    string HeadSha,
    string Author,
    string RequestedBy,
    string TriggerId);

/// <summary>What a submission started: one run, or for a sweep file its sweep id and the sweep as submitted (every variant's run).</summary>
public sealed record SubmittedRun(string RunId, Uri? DetailsUrl = null, Comments.SweepReport? Sweep = null);

/// <summary>
/// Starts a run on the team's engine and returns at once (a CI job never waits for training). Implemented by the
/// engine (wired by the lead); it records PR number, head SHA and author in the run so the report step can find the
/// PR again.
/// </summary>
public interface IRunSubmitter
{
    Task<SubmittedRun> SubmitAsync(RunRequest request, CancellationToken cancellationToken = default);
}
