using System.Text.RegularExpressions;
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

/// <summary>The guard's answer. <see cref="Experiments"/> is what to submit (Run only).</summary>
public sealed record GuardDecision(GuardVerdict Verdict, string Reason, IReadOnlyList<string> Experiments)
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
    string? ExpectedHeadSha = null);

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
                    : GuardDecision.Ignore($"label '{input.Label}' is not the run label '{input.RunLabel}'");
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
    /// Parses the first line of a comment: null when it is not a /run command, else the requested names (empty: all
    /// the PR's experiments) or an error.
    /// </summary>
    public static (IReadOnlyList<string>? Names, string? Error) ParseRunCommand(string? body)
    {
        var firstLine = (body ?? "").Replace("\r", "", StringComparison.Ordinal).Split('\n')[0].Trim();
        var m = RunCommand().Match(firstLine);
        if (!m.Success)
        {
            return (null, null);
        }

        var names = m.Groups["args"].Value.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries).Distinct().ToList();
        var bad = names.FirstOrDefault(n => !CommentMarker.IsValidName(n));
        return bad is null
            ? (names, null)
            : (names, $"'{bad}' is not an experiment name (lower-case letters, digits and '-'); write /run or /run NAME");
    }

    private static GuardDecision FromComment(GuardInput input)
    {
        if (input.Action != "created")
        {
            // An edit could turn an old, already-handled comment into a command; only new comments count.
            return GuardDecision.Ignore($"issue_comment {input.Action}: only new comments are commands");
        }

        var (names, error) = ParseRunCommand(input.CommentBody);
        if (names is null)
        {
            return GuardDecision.Ignore("the comment is not a /run command");
        }

        if (input.PullRequest is null)
        {
            return GuardDecision.Ignore("/run on an issue, not a pull request");
        }

        return error is not null ? GuardDecision.Refuse(error) : RunRequest(input, input.PullRequest, names, "/run");
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

        if (!pr.IsOpen)
        {
            return GuardDecision.Refuse($"pull request #{pr.Number} is closed");
        }

        if (input.ActorPermission < Required)
        {
            return GuardDecision.Refuse(
                $"{input.Actor} has {Describe(input.ActorPermission)} permission on the repository; {how} needs write, maintain or admin");
        }

        var changed = input.ChangedExperiments ?? [];
        if (changed.Count == 0)
        {
            return GuardDecision.Refuse($"pull request #{pr.Number} adds or changes no experiment file under experiments/");
        }

        if (requested is { Count: > 0 })
        {
            var unknown = requested.Where(n => !changed.Contains(n)).ToList();
            if (unknown.Count > 0)
            {
                return GuardDecision.Refuse(
                    $"{string.Join(", ", unknown)}: not an experiment this pull request adds or changes (it has: {string.Join(", ", changed)})");
            }

            return GuardDecision.Run($"{how} by {input.Actor} ({Describe(input.ActorPermission)}) at {Short(pr.HeadSha)}", requested);
        }

        return GuardDecision.Run($"{how} by {input.Actor} ({Describe(input.ActorPermission)}) at {Short(pr.HeadSha)}", changed);
    }

    private static string Describe(RepoPermission p) => p.ToString().ToLowerInvariant();

    private static string Short(string sha) => sha.Length > 7 ? sha[..7] : sha;

    /// <summary>
    /// The experiments a PR adds or changes: files under an <c>experiments/</c> folder ending in .yaml/.yml (not
    /// schema files), not removed, named by their file stem (the repository policy makes the stem the experiment name).
    /// </summary>
    public static IReadOnlyList<string> ExperimentsIn(IEnumerable<ChangedFile> files) =>
        files.Where(f => f.Status != "removed" && IsExperimentPath(f.Path))
            .Select(f => Path.GetFileNameWithoutExtension(f.Path))
            .Where(CommentMarker.IsValidName)
            .Distinct()
            .Order(StringComparer.Ordinal)
            .ToList();

    public static bool IsExperimentPath(string path) =>
        (path.StartsWith("experiments/", StringComparison.Ordinal) || path.Contains("/experiments/", StringComparison.Ordinal))
        && (path.EndsWith(".yaml", StringComparison.Ordinal) || path.EndsWith(".yml", StringComparison.Ordinal));
}
