using System.Text.RegularExpressions;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Guard;

public enum GuardVerdict
{
    /// <summary>Not for us (another label, an ordinary comment, a closed PR event): do nothing, succeed quietly.</summary>
    Ignore,

    /// <summary>Validate and plan; no secrets, no run.</summary>
    PlanOnly,

    /// <summary>Submit the listed experiments.</summary>
    Run,

    /// <summary>Someone asked for a run that must not happen; <see cref="GuardDecision.Reason"/> says why.</summary>
    Refuse,
}

/// <summary>
/// The guard's answer. <see cref="Experiments"/> is what to submit (Run only); <see cref="HeadSha"/> the one commit the
/// request approved (Run only), which the submit job must find still at the head.
/// </summary>
public sealed record GuardDecision(GuardVerdict Verdict, string Reason, IReadOnlyList<string> Experiments, string? HeadSha = null)
{
    public static GuardDecision Ignore(string reason) => new(GuardVerdict.Ignore, reason, []);

    public static GuardDecision PlanOnly(string reason) => new(GuardVerdict.PlanOnly, reason, []);

    public static GuardDecision Refuse(string reason) => new(GuardVerdict.Refuse, reason, []);

    public static GuardDecision Run(string reason, IReadOnlyList<string> experiments) => new(GuardVerdict.Run, reason, experiments);
}

/// <summary>
/// The facts of one workflow trigger. <see cref="EventName"/> and <see cref="Action"/> are GitHub's
/// (<c>github.event_name</c>, <c>github.event.action</c>). <see cref="PullRequest"/> is read from the API (an
/// <c>issue_comment</c> payload has no head SHA or fork flag); null when the comment is on a plain issue.
/// <see cref="ChangedExperiments"/>: names of the experiment files the PR adds or modifies (not deletes).
/// <see cref="ExpectedHeadSha"/>: the head the guard job approved; the submit job passes it so that a push between the
/// two jobs cannot slip an unapproved commit into the run.
/// <see cref="ApprovedHeadSha"/>: the commit the requester saw, pinned when the request was made: the label event's head
/// (handed over by <c>workflow_run</c>). A <c>/run @SHA</c> comment names it itself.
/// <see cref="PushedAfterRequest"/>: when the PR's branch was pushed after the request (the repository activity log), so a
/// push racing a <c>/run</c> comment is not run unreviewed. <see cref="RequireOtherApprover"/>: the two-person rule, the
/// requester may not be the PR's author. <see cref="DuplicateExperiments"/>: names two changed files share.
/// </summary>
public sealed record GuardInput(
    string EventName,
    string? Action,
    string Actor,
    RepoPermission ActorPermission,
    PullRequestInfo? PullRequest = null,
    string? CommentBody = null,
    string? Label = null,
    IReadOnlyList<string>? ChangedExperiments = null,
    string RunLabel = RunGuard.DefaultRunLabel,
    string? ExpectedHeadSha = null,
    string? ApprovedHeadSha = null,
    DateTimeOffset? PushedAfterRequest = null,
    bool RequireOtherApprover = false,
    IReadOnlyList<string>? DuplicateExperiments = null);

/// <summary>
/// Decides what a trigger may do. Pure: every fact comes in through <see cref="GuardInput"/>, so the whole policy is
/// tested without GitHub. The rules, in order (docs/gitops.md explains the event choices):
/// <list type="number">
/// <item><c>pull_request_target</c> is refused: it runs with secrets and a write token, which is only safe if it never
/// touches the head's code, and this project does not need it.</item>
/// <item>Actors ending in <c>[bot]</c> are ignored (no loops through our own comments).</item>
/// <item><c>pull_request</c> opened/synchronize/reopened/ready_for_review: plan only (forks included; that event gets a
/// read-only token and no secrets for forks).</item>
/// <item><c>pull_request</c> labeled with the run label, or a new <c>issue_comment</c> on a PR whose first line is
/// <c>/run</c> or <c>/run NAME...</c>: a run request, granted only if the PR is not from a fork, is open, the actor has
/// write, maintain or admin permission, and every named experiment is one the PR adds or changes.</item>
/// <item><c>workflow_run</c>: the run label handed over from the pull-request side to a default-branch workflow (the
/// <c>labeled</c> event runs the pull request's own workflow file, which must never hold secrets): a run request by the
/// account that added the label, pinned to the head the label event saw.</item>
/// <item>Every run request runs exactly one commit: the head when it was asked for (<c>/run</c> with no push to the branch
/// after the comment, <c>/run @SHA</c>, or the label event's head); a push after that is refused, never run.</item>
/// <item><c>workflow_dispatch</c> (reruns): run if the actor can write (GitHub already demands that; checked again).</item>
/// <item>Anything else is ignored.</item>
/// </list>
/// </summary>
public static partial class RunGuard
{
    public const string DefaultRunLabel = "run-experiment";

    public const RepoPermission Required = RepoPermission.Write;

    private static readonly HashSet<string> PlanActions = ["opened", "synchronize", "reopened", "ready_for_review"];

    [GeneratedRegex(@"^/run(?:\s+(?<args>.*))?$")]
    private static partial Regex RunCommand();

    [GeneratedRegex("^@[0-9a-fA-F]{7,40}$")]
    private static partial Regex ShaArgument();

    public static GuardDecision Decide(GuardInput input)
    {
        switch (input.EventName)
        {
            case "pull_request_target":
                return GuardDecision.Refuse(
                    "pull_request_target is not used: it runs with the base repository's secrets and a write token, and checking out the pull request's head there would run untrusted code with them");
            case var _ when input.Actor.EndsWith("[bot]", StringComparison.Ordinal):
                return GuardDecision.Ignore($"{input.Actor} is a bot");
            case "pull_request" when input.Action == "labeled":
                return input.Label == input.RunLabel
                    ? RunRequest(input, input.PullRequest, requested: null, how: $"label '{input.RunLabel}'")
                    : GuardDecision.Ignore($"label {Untrusted.Quote(input.Label)} is not the run label '{input.RunLabel}'");
            case "workflow_run":
                return input.Label == input.RunLabel
                    ? RunRequest(input, input.PullRequest, requested: null, how: $"label '{input.RunLabel}'")
                    : GuardDecision.Ignore($"the pull request does not carry the run label '{input.RunLabel}' (any more)");
            case "pull_request":
                return input.Action is { } a && PlanActions.Contains(a)
                    ? GuardDecision.PlanOnly($"pull_request {a}: validate and plan")
                    : GuardDecision.Ignore($"pull_request {input.Action} needs no plan");
            case "issue_comment":
                return FromComment(input);
            case "workflow_dispatch":
                return input.ActorPermission >= Required
                    ? GuardDecision.Run($"dispatched by {input.Actor} ({Describe(input.ActorPermission)})", [])
                    : GuardDecision.Refuse($"{input.Actor} has {Describe(input.ActorPermission)} permission; a run needs write, maintain or admin");
            default:
                return GuardDecision.Ignore($"event {input.EventName} does not plan or run experiments");
        }
    }

    /// <summary>
    /// Parses the first line of a comment: null names when it is not a /run command, else the requested names (empty:
    /// all the PR's experiments), the commit it approves (<c>@SHA</c>, 7-40 hex digits, optional) or an error.
    /// </summary>
    public static (IReadOnlyList<string>? Names, string? Error, string? Sha) ParseRunCommand(string? body)
    {
        var firstLine = (body ?? "").Replace("\r", "", StringComparison.Ordinal).Split('\n')[0].Trim();
        var m = RunCommand().Match(firstLine);
        if (!m.Success)
        {
            return (null, null, null);
        }

        var words = m.Groups["args"].Value.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries).Distinct().ToList();
        var shas = words.Where(w => w.StartsWith('@')).ToList();
        var names = words.Where(w => !w.StartsWith('@')).ToList();
        if (shas.Count > 1 || shas.Any(s => !ShaArgument().IsMatch(s)))
        {
            return (names, $"{Untrusted.Quote(shas.FirstOrDefault(s => !ShaArgument().IsMatch(s)) ?? string.Join(' ', shas))} is not one commit: write /run @SHA with 7 to 40 hex digits of the head commit", null);
        }

        var bad = names.FirstOrDefault(n => !CommentMarker.IsValidName(n));
        return bad is null
            ? (names, null, shas.Count == 1 ? shas[0][1..].ToLowerInvariant() : null)
            : (names, $"{Untrusted.Quote(bad)} is not an experiment name (lower-case letters, digits and '-'); write /run, /run NAME or /run NAME @SHA", null);
    }

    private static GuardDecision FromComment(GuardInput input)
    {
        if (input.Action != "created")
        {
            // An edit could turn an old, already-handled comment into a command; only new comments count.
            return GuardDecision.Ignore($"issue_comment {input.Action}: only new comments are commands");
        }

        var (names, error, sha) = ParseRunCommand(input.CommentBody);
        if (names is null)
        {
            return GuardDecision.Ignore("the comment is not a /run command");
        }

        if (input.PullRequest is null)
        {
            return GuardDecision.Ignore("/run on an issue, not a pull request");
        }

        if (error is not null)
        {
            return GuardDecision.Refuse(error);
        }

        // An explicit commit is the approval itself: a push after the comment cannot change what it approved.
        return sha is not null
            ? RunRequest(input with { ApprovedHeadSha = sha, PushedAfterRequest = null }, input.PullRequest, names, "/run")
            : RunRequest(input, input.PullRequest, names, "/run");
    }

    private static GuardDecision RunRequest(GuardInput input, PullRequestInfo? pr, IReadOnlyList<string>? requested, string how)
    {
        if (pr is null)
        {
            return GuardDecision.Ignore($"{how} without a pull request");
        }

        // Forks first: no permission, however high, makes a fork's head safe to run with our secrets.
        if (pr.IsFork)
        {
            return GuardDecision.Refuse(
                $"pull request #{pr.Number} comes from a fork ({pr.HeadRepoFullName ?? "deleted repository"}): forks never trigger runs. A maintainer can push the branch to this repository and open the pull request from there");
        }

        if (input.ExpectedHeadSha is { } expected && !string.Equals(expected, pr.HeadSha, StringComparison.OrdinalIgnoreCase))
        {
            return GuardDecision.Refuse(
                $"the head of pull request #{pr.Number} moved from {Short(expected)} to {Short(pr.HeadSha)} after the run was approved; ask again (/run) for the new commit");
        }

        if (input.ApprovedHeadSha is { } approved && !pr.HeadSha.StartsWith(approved, StringComparison.OrdinalIgnoreCase))
        {
            return GuardDecision.Refuse(
                $"{how} approved commit {Short(approved)}, but the head of pull request #{pr.Number} is now {Short(pr.HeadSha)}; review the new commit and ask again (/run @{Short(pr.HeadSha)})");
        }

        if (input.PushedAfterRequest is { } pushed && input.ApprovedHeadSha is null)
        {
            return GuardDecision.Refuse(
                $"the branch of pull request #{pr.Number} was pushed at {pushed.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z, after the {how} request: the head {Short(pr.HeadSha)} is not the commit that was approved. Review it and ask again, or approve it exactly with /run @{Short(pr.HeadSha)}");
        }

        if (!pr.IsOpen)
        {
            return GuardDecision.Refuse($"pull request #{pr.Number} is closed");
        }

        if (input.ActorPermission < Required)
        {
            return GuardDecision.Refuse(
                $"{input.Actor} has {Describe(input.ActorPermission)} permission on the repository; {how} needs write, maintain or admin");
        }

        if (input.RequireOtherApprover && string.Equals(input.Actor, pr.Author, StringComparison.OrdinalIgnoreCase))
        {
            return GuardDecision.Refuse(
                $"{input.Actor} wrote pull request #{pr.Number}; the two-person rule (gitops.require_other_approver) needs another maintainer to ask for the run");
        }

        var changed = input.ChangedExperiments ?? [];
        if (changed.Count == 0)
        {
            return GuardDecision.Refuse($"pull request #{pr.Number} adds or changes no experiment file under experiments/");
        }

        if (input.DuplicateExperiments is { Count: > 0 } twice)
        {
            return GuardDecision.Refuse(
                $"{string.Join(", ", twice)}: two changed experiment files have this name; every experiment file under experiments/ needs a name of its own");
        }

        if (requested is { Count: > 0 })
        {
            var unknown = requested.Where(n => !changed.Contains(n)).ToList();
            if (unknown.Count > 0)
            {
                return GuardDecision.Refuse(
                    $"{string.Join(", ", unknown)}: not an experiment this pull request adds or changes (it has: {string.Join(", ", changed)})");
            }

            return GuardDecision.Run($"{how} by {input.Actor} ({Describe(input.ActorPermission)}) at {Short(pr.HeadSha)}", requested) with { HeadSha = pr.HeadSha };
        }

        return GuardDecision.Run($"{how} by {input.Actor} ({Describe(input.ActorPermission)}) at {Short(pr.HeadSha)}", changed) with { HeadSha = pr.HeadSha };
    }

    private static string Describe(RepoPermission p) => p.ToString().ToLowerInvariant();

    private static string Short(string sha) => sha.Length > 7 ? sha[..7] : sha;

    /// <summary>
    /// The experiments a PR adds or changes: files under an <c>experiments/</c> folder ending in .yaml/.yml (not
    /// schema files), not removed, named by their file stem (the repository policy makes the stem the experiment name).
    /// </summary>
    public static IReadOnlyList<string> ExperimentsIn(IEnumerable<ChangedFile> files) =>
        ExperimentFiles(files).Select(f => f.Name).Distinct().Order(StringComparer.Ordinal).ToList();

    /// <summary>The PR's experiment files (see <see cref="ExperimentsIn"/>) with their paths, sorted by path.</summary>
    public static IReadOnlyList<(string Name, string Path)> ExperimentFiles(IEnumerable<ChangedFile> files) =>
        files.Where(f => f.Status != "removed" && IsExperimentPath(f.Path))
            .Select(f => (Name: Path.GetFileNameWithoutExtension(f.Path), f.Path))
            .Where(f => CommentMarker.IsValidName(f.Name))
            .OrderBy(f => f.Path, StringComparer.Ordinal)
            .ToList();

    /// <summary>Names that two or more of the PR's experiment files share (experiments/a/x.yaml and experiments/x.yaml).</summary>
    public static IReadOnlyList<string> DuplicateNames(IEnumerable<ChangedFile> files) =>
        ExperimentFiles(files).GroupBy(f => f.Name).Where(g => g.Count() > 1).Select(g => g.Key).Order(StringComparer.Ordinal).ToList();

    public static bool IsExperimentPath(string path) =>
        (path.StartsWith("experiments/", StringComparison.Ordinal) || path.Contains("/experiments/", StringComparison.Ordinal))
        && (path.EndsWith(".yaml", StringComparison.Ordinal) || path.EndsWith(".yml", StringComparison.Ordinal));
}
