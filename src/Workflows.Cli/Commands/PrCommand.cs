using System.CommandLine;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Archive;
using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Guard;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Commands;

/// <summary>
/// The pull-request side of GitOps, as the workflows in .github/workflows call it. Every command talks to the GitHub
/// REST API with GITHUB_TOKEN (GITHUB_API_URL / WF_GITHUB_API_URL for Enterprise or a test server).
/// </summary>
public static class PrCommand
{
    public static Command Create(CliContext cli)
    {
        var pr = new Command("pr", "Pull-request automation for experiment files (used by .github/workflows/experiment-pr.yml).");
        pr.Subcommands.Add(CommentPlan(cli));
        pr.Subcommands.Add(Guard(cli));
        pr.Subcommands.Add(CheckArchive(cli));
        pr.Subcommands.Add(PrSubmitCommand.Create(cli));
        pr.Subcommands.Add(PrDoctorCommand.Create(cli));
        return pr;
    }

    /// <summary>The trigger options guard and submit share (the workflow passes the same values to both jobs).</summary>
    internal sealed record TriggerOptions(
        Option<string> Event, Option<string?> Action, Option<string> Actor, Option<string?> CommentEnv, Option<string?> Label,
        Option<DateTimeOffset?> RequestedAt, Option<string?> ApprovedSha, Option<bool> RequireOtherApprover)
    {
        public static TriggerOptions Create() => new(
            new Option<string>("--event") { Description = "github.event_name", Required = true },
            new Option<string?>("--action") { Description = "github.event.action" },
            new Option<string>("--actor") { Description = "The comment's author, or github.actor (the label handover looks up who added the label).", Required = true },
            new Option<string?>("--comment-env") { Description = "Name of the environment variable holding the comment body (never pass it as an argument)." },
            new Option<string?>("--label") { Description = "The label that was added (labeled events)." },
            new Option<DateTimeOffset?>("--requested-at") { Description = "When the /run comment was written (github.event.comment.created_at): a push to the branch after it is refused." },
            new Option<string?>("--approved-sha") { Description = "The head the trigger saw (label handover: github.event.workflow_run.head_sha): anything else is refused." },
            new Option<bool>("--require-other-approver") { Description = "Two-person rule: the run must be asked for by someone other than the PR's author (repository variable WF_REQUIRE_OTHER_APPROVER)." });

        public IEnumerable<Option> All => [Event, Action, Actor, CommentEnv, Label, RequestedAt, ApprovedSha, RequireOtherApprover];

        public TriggerContext Read(ParseResult parse, int number, string triggerId = "", string? expectedSha = null) =>
            new(parse.GetValue(Event)!, parse.GetValue(Action), parse.GetValue(Actor)!, number,
                parse.GetValue(CommentEnv) is { } name ? Environment.GetEnvironmentVariable(name) : null,
                parse.GetValue(Label), triggerId, ExpectedHeadSha: expectedSha, RequestedAt: parse.GetValue(RequestedAt),
                ApprovedHeadSha: parse.GetValue(ApprovedSha), RequireOtherApprover: parse.GetValue(RequireOtherApprover));
    }

    private static Option<string?> RepoOption() => new("--repo") { Description = "owner/name (default: $GITHUB_REPOSITORY)." };

    private static Option<int> PrOption() => new("--pr") { Description = "Pull-request number.", Required = true };

    private static Command CommentPlan(CliContext cli)
    {
        var repo = RepoOption();
        var number = PrOption();
        var sha = new Option<string?>("--sha") { Description = "Head SHA the plan was made for (shown in the comment)." };
        var files = new Argument<string[]>("files") { Description = "Changed experiment files.", Arity = ArgumentArity.OneOrMore };
        var command = new Command("comment-plan", """
            Validate and plan each file and post or update ONE sticky comment per experiment (a hidden marker finds it
            again; re-runs edit it). Invalid files get their file:line:column errors in the comment. Exits 0 even then:
            the workflow's validate step is what fails the check.

            Example:
              wf pr comment-plan --repo org/experiments --pr 42 --sha $HEAD_SHA experiments/per-source-5b-80k.yaml
            """)
        {
            repo, number, sha, files,
        };
        command.SetAction(async (parse, ct) =>
        {
            var bot = new PullRequestBot(new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo))));
            // Sweep files get their variants, totals and shared steps (the template from the checkout's workflows/).
            var inputs = parse.GetValue(files)!.Select(f => PlanCommentInputs.FromFile(f, f, parse.GetValue(sha), PlanCommand.ToMarkdown,
                new LoadOptions(WorkflowsDirectory: RepositoryLayout.FindWorkflowsDirectory(f)), sweepToMarkdown: Workflows.Cli.Sweeps.SweepPlanView.ToMarkdown)).ToList();
            var results = await bot.PostPlansAsync(parse.GetValue(number), inputs);
            foreach (var (input, result) in inputs.Zip(results))
            {
                cli.Out.WriteLine($"{input.Experiment}: {result}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Guard(CliContext cli)
    {
        var repo = RepoOption();
        var number = PrOption();
        var trigger = TriggerOptions.Create();
        var output = new Option<string?>("--github-output") { Description = "Append verdict=..., reason=..., experiments=... to this file ($GITHUB_OUTPUT)." };
        var command = new Command("guard", """
            Decide whether a pull-request event may start a run: a maintainer (write permission or above) commented
            '/run' (or '/run NAME... @SHA') or added the run label (handed over by workflow_run), on a PR from this
            repository (never a fork), for experiments the PR changes, at the commit the request saw. Prints the verdict
            (ignore, plan-only, run, refuse) and the reason; makes no writes.
            """)
        {
            repo, number, output,
        };
        foreach (var option in trigger.All)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, ct) =>
        {
            var bot = new PullRequestBot(new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo))));
            var outcome = await bot.DecideAsync(trigger.Read(parse, parse.GetValue(number)));
            cli.Out.WriteLine($"{outcome.Decision.Verdict}: {outcome.Decision.Reason}");
            if (parse.GetValue(output) is { } file)
            {
                await File.AppendAllTextAsync(file, GitHubOutputs.Format(outcome.Decision, outcome.PullRequest?.HeadSha), ct);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command CheckArchive(CliContext cli)
    {
        var repo = RepoOption();
        var number = PrOption();
        var index = new Option<string>("--index-url") { Description = "URL (or local path) of the archive index JSON that 'wf archive' publishes.", Required = true };
        var head = new Option<string?>("--head-dir") { Description = "A checkout of the pull request's head (read as data): the name: of every changed experiment file is checked against the archived names too." };
        var command = new Command("check-archive", """
            Fail when the pull request edits, deletes or renames an archived experiment file, or adds or changes a file
            (anywhere under experiments/) whose name: is an archived experiment's (archived experiments are immutable:
            copy one under a new name instead). Exit 1 with the list of violations.
            """)
        {
            repo, number, index, head,
        };
        command.SetAction(async (parse, ct) =>
        {
            var github = new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo)));
            var source = parse.GetValue(index)!;
            string json;
            if (Uri.TryCreate(source, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
            {
                using var http = new HttpClient();
                json = await http.GetStringAsync(uri, ct);
            }
            else
            {
                json = await File.ReadAllTextAsync(source, ct);
            }

            var archive = JsonArchiveIndex.Parse(json);
            var changed = await github.ListChangedFilesAsync(parse.GetValue(number));
            var names = new Dictionary<string, string>(StringComparer.Ordinal);
            if (parse.GetValue(head) is { } headDir)
            {
                foreach (var file in changed.Where(f => f.Status != "removed" && RunGuard.IsExperimentPath(f.Path)))
                {
                    if (ExperimentGitOps.NameOf(Path.Combine(headDir, file.Path)) is { } name)
                    {
                        names[file.Path] = name;
                    }
                }
            }

            var violations = ArchiveImmutability.Check(changed, archive.Experiments, names);
            if (violations.Count == 0)
            {
                cli.Out.WriteLine("no archived experiment is changed");
                return ExitCodes.Ok;
            }

            cli.Out.WriteLine(ArchiveImmutability.Describe(violations));
            return ExitCodes.InvalidInput;
        });
        return command;
    }
}
