using System.CommandLine;
using Workflows.Cli.GitOps;
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
        var eventName = new Option<string>("--event") { Description = "github.event_name", Required = true };
        var action = new Option<string?>("--action") { Description = "github.event.action" };
        var actor = new Option<string>("--actor") { Description = "The comment's author, or github.actor.", Required = true };
        var commentEnv = new Option<string?>("--comment-env") { Description = "Name of the environment variable holding the comment body." };
        var label = new Option<string?>("--label") { Description = "The label that was added (labeled events)." };
        var expectSha = new Option<string?>("--expect-sha") { Description = "Head SHA the guard approved: refuse if the PR moved since." };
        var triggerId = new Option<string>("--trigger-id") { Description = "Comment id or workflow run id: a redelivered trigger returns the run it already started.", Required = true };
        var experimentsDir = new Option<string>("--experiments-dir") { Description = "Folder holding the approved head's experiment files (read as data): NAME is DIR/NAME.yaml.", Required = true };
        var workflowsDir = new Option<string?>("--workflows-dir") { Description = "Workflow templates (default: ./workflows of this checkout, the default branch's)." };
        var hub = EngineCli.HubOption();
        var command = new Command("submit", """
            The guard (as 'wf pr guard'), then for each approved experiment: submit it to the engine with the PR's
            repository, number, head SHA, author, requester and trigger id recorded in the run; set the commit status
            wf/experiment/NAME to pending on the head SHA; put "run submitted" in its sticky comment. Returns at once
            (a worker runs the experiment; its results come back to the PR when it ends). Exit 1 when refused.
            Storage: WF_STORAGE_CONNECTION_STRING. GitHub: GITHUB_TOKEN.

            Example:
              COMMENT_BODY=/run wf pr submit --repo org/experiments --event issue_comment --action created --actor alice \
                --pr 42 --comment-env COMMENT_BODY --expect-sha $HEAD_SHA --trigger-id 123456 --experiments-dir pr-head/experiments
            """)
        {
            repo, number, eventName, action, actor, commentEnv, label, expectSha, triggerId, experimentsDir, workflowsDir, hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            var bot = new PullRequestBot(new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo))));
            var body = parse.GetValue(commentEnv) is { } name ? Environment.GetEnvironmentVariable(name) : null;
            var trigger = new TriggerContext(parse.GetValue(eventName)!, parse.GetValue(action), parse.GetValue(actor)!, parse.GetValue(number), body,
                parse.GetValue(label), parse.GetValue(triggerId)!, ExpectedHeadSha: parse.GetValue(expectSha));
            var folder = parse.GetValue(experimentsDir)!;
            var workflows = GitOpsCli.WorkflowsDirectory(parse.GetValue(workflowsDir));
            return await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, _) =>
            {
                var submitter = new EngineRunSubmitter(client, workflows, EngineCli.CodeCommit());
                var outcome = await bot.HandleTriggerAsync(trigger, submitter, experiment => Path.Combine(folder, experiment + ".yaml"), ct);
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
}
