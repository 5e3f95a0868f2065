using System.CommandLine;
using Workflows.Cli.GitOps;
using Workflows.GitOps.Doctor;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Guard;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf pr submit</c>: the guard, then submit each approved experiment to the engine, pending status, run section.</summary>
public static class PrSubmitCommand
{
    public static Command Create(CliContext cli)
    {
        var repo = new Option<string?>("--repo") { Description = "owner/name (default: $GITHUB_REPOSITORY)." };
        var number = new Option<int>("--pr") { Description = "Pull-request number.", Required = true };
        var trigger = PrCommand.TriggerOptions.Create();
        var expectSha = new Option<string?>("--expect-sha") { Description = "Head SHA the guard approved: refuse if the PR moved since." };
        var triggerId = new Option<string>("--trigger-id") { Description = "Comment id or workflow run id: a redelivered trigger returns the run it already started.", Required = true };
        var experimentsDir = new Option<string>("--experiments-dir") { Description = "The approved head's experiments/ folder (read as data): experiments/a/x.yaml is read as DIR/a/x.yaml.", Required = true };
        var workflowsDir = new Option<string?>("--workflows-dir") { Description = "Workflow templates (default: ./workflows of this checkout, the default branch's)." };
        var environment = new Option<string?>("--environment")
        {
            Description = $"The GitHub environment holding the secrets (e.g. {RepositoryDoctor.DefaultEnvironment}): refuse unless only the default branch may use it (needs 'actions: read').",
        };
        var hub = EngineCli.HubOption();
        var command = new Command("submit", """
            The guard (as 'wf pr guard'), then for each approved experiment: submit it to the engine with the PR's
            repository, number, head SHA, author, requester and trigger id recorded in the run; set the commit status
            wf/experiment/NAME to pending on the head SHA; put "run submitted" in its sticky comment. Returns at once
            (a worker runs the experiment; its results come back to the PR when it ends). Exit 1 when refused.
            Under GitHub Actions it first refuses to run from any ref but the default branch, and with --environment
            unless that environment is limited to the default branch. Storage: WF_STORAGE_CONNECTION_STRING. GitHub:
            GITHUB_TOKEN.

            Example:
              COMMENT_BODY=/run wf pr submit --repo org/experiments --event issue_comment --action created --actor alice \
                --pr 42 --comment-env COMMENT_BODY --expect-sha $HEAD_SHA --trigger-id 123456 --experiments-dir pr-head/experiments
            """)
        {
            repo, number, expectSha, triggerId, experimentsDir, workflowsDir, environment, hub,
        };
        foreach (var option in trigger.All)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, ct) =>
        {
            // Both checks come before the engine (and its storage secret) is touched.
            if (CiRef.Problem() is { } wrongRef)
            {
                cli.Err.WriteLine($"error: {wrongRef}");
                return ExitCodes.InvalidInput;
            }

            var github = new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo)));
            if (parse.GetValue(environment) is { } name && await EnvironmentProblemAsync(github, name) is { } unprotected)
            {
                cli.Err.WriteLine($"error: {unprotected}");
                return ExitCodes.InvalidInput;
            }

            var bot = new PullRequestBot(github);
            var context = trigger.Read(parse, parse.GetValue(number), parse.GetValue(triggerId)!, parse.GetValue(expectSha));
            var folder = parse.GetValue(experimentsDir)!;
            var workflows = GitOpsCli.WorkflowsDirectory(parse.GetValue(workflowsDir));
            return await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, _) =>
            {
                var submitter = new EngineRunSubmitter(client, workflows, EngineCli.CodeCommit());
                var outcome = await bot.HandleTriggerAsync(context, submitter, path => InExperimentsFolder(folder, path), ct);
                cli.Out.WriteLine($"{outcome.Decision.Verdict}: {outcome.Decision.Reason}");
                foreach (var s in outcome.Submitted)
                {
                    cli.Out.WriteLine($"{s.Experiment}: run {s.Run.RunId} submitted; comment {s.Comment.HtmlUrl} ({s.Comment.Action})");
                }

                return outcome.Decision.Verdict == GuardVerdict.Refuse ? ExitCodes.InvalidInput : ExitCodes.Ok;
            }, ct);
        });
        return command;
    }

    /// <summary>A changed file's repository path (experiments/a/x.yaml) inside the checked-out experiments folder (DIR/a/x.yaml).</summary>
    public static string InExperimentsFolder(string folder, string repositoryPath)
    {
        var marker = repositoryPath.StartsWith("experiments/", StringComparison.Ordinal) ? 0 : repositoryPath.IndexOf("/experiments/", StringComparison.Ordinal) + 1;
        var inside = repositoryPath[(marker + "experiments/".Length)..];
        return Path.Combine(folder, inside);
    }

    /// <summary>Null when only the default branch may use <paramref name="environment"/>; else why the secrets are not safe.</summary>
    private static async Task<string?> EnvironmentProblemAsync(GitHubRepoClient github, string environment)
    {
        try
        {
            var defaultBranch = await github.GetDefaultBranchAsync();
            var protection = await new RepositoryDoctor(github).ReadEnvironmentAsync(environment);
            return protection switch
            {
                null => $"environment '{environment}' does not exist: the secrets this job holds are not behind its branch rule (wf pr doctor)",
                _ when protection.OnlyDefaultBranch(defaultBranch) || protection.Branches == BranchRule.ProtectedBranches => null,
                _ => $"environment '{environment}' may be used from other branches than '{defaultBranch}' ({protection.Branches}{(protection.BranchPatterns.Count > 0 ? ": " + string.Join(", ", protection.BranchPatterns) : "")}): a pull request's workflow could read its secrets; limit it to '{defaultBranch}' (wf pr doctor lists what else is missing)",
            };
        }
        catch (Octokit.ApiException e)
        {
            return $"cannot read environment '{environment}' ({(int)e.StatusCode}): give the job 'permissions: actions: read' so it can check the branch rule before it uses the secrets";
        }
    }
}
