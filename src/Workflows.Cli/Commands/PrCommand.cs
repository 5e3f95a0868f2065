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
        return pr;
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
        var eventName = new Option<string>("--event") { Description = "github.event_name", Required = true };
        var action = new Option<string?>("--action") { Description = "github.event.action" };
        var actor = new Option<string>("--actor") { Description = "The comment's author, or github.actor.", Required = true };
        var commentEnv = new Option<string?>("--comment-env") { Description = "Name of the environment variable holding the comment body (never pass it as an argument)." };
        var label = new Option<string?>("--label") { Description = "The label that was added (labeled events)." };
        var output = new Option<string?>("--github-output") { Description = "Append verdict=..., reason=..., experiments=... to this file ($GITHUB_OUTPUT)." };
        var command = new Command("guard", """
            Decide whether a pull-request event may start a run: a maintainer (write permission or above) commented
            '/run' or added the run label, on a PR from this repository (never a fork), for experiments the PR changes.
            Prints the verdict (ignore, plan-only, run, refuse) and the reason; makes no writes.
            """)
        {
            repo, number, eventName, action, actor, commentEnv, label, output,
        };
        command.SetAction(async (parse, ct) =>
        {
            var bot = new PullRequestBot(new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo))));
            var body = parse.GetValue(commentEnv) is { } name ? Environment.GetEnvironmentVariable(name) : null;
            var outcome = await bot.DecideAsync(new TriggerContext(parse.GetValue(eventName)!, parse.GetValue(action), parse.GetValue(actor)!,
                parse.GetValue(number), body, parse.GetValue(label)));
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
        var command = new Command("check-archive", """
            Fail when the pull request edits, deletes or renames an archived experiment file (archived experiments are
            immutable: copy one under a new name instead). Exit 1 with the list of violations.
            """)
        {
            repo, number, index,
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
            var violations = ArchiveImmutability.Check(await github.ListChangedFilesAsync(parse.GetValue(number)), archive.Experiments);
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
