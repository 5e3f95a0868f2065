using System.CommandLine;
using Workflows.Artifacts.Runs;
using Workflows.Cli.GitOps;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf report --run ID --pr N</c>: the results of a run on its pull request, by hand (the engine does it when a run ends).</summary>
public static class ReportCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Option<string>("--run") { Description = "Run id, or a sweep id (the sweep's comment with every variant).", Required = true };
        var number = new Option<int?>("--pr") { Description = "Pull-request number (default: the PR recorded in the run)." };
        var repo = new Option<string?>("--repo") { Description = "owner/name (default: the run's repository, else $GITHUB_REPOSITORY)." };
        var hub = EngineCli.HubOption();
        var command = new Command("report", """
            Put a run's results on its pull request: the run section of the experiment's sticky comment (heatmap by URL,
            mean needle score, needle and loss tables, artifact links, run id, step durations, the error if it failed, and
            for a rerun the comparison with the archived run) and the commit status wf/experiment/NAME on the head SHA.
            Idempotent: running it again edits nothing and re-sends the same status. Report files are published to the
            reports container (WF_REPORTS_CONTAINER, default wf-reports; WF_REPORTS_ACCESS=public|sas).

            Example:
              wf report --run pr42-per-source-5b-80k-3fa9c2d1e0 --pr 42 --repo org/experiments
            """)
        {
            run, number, repo, hub,
        };
        command.SetAction(async (parse, ct) => await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, connection) =>
        {
            var id = parse.GetValue(run)!;
            var record = (await client.Runs.GetAsync(id, ct))?.Record;
            if (record is null && await new SweepRecordStore(client.Store).GetAsync(id, ct) is { } sweep)
            {
                return await ReportSweepAsync(cli, connection, client, sweep.Record, parse.GetValue(number), parse.GetValue(repo), ct);
            }

            if (record is null)
            {
                cli.Err.WriteLine($"error: no run '{id}'");
                return ExitCodes.InvalidInput;
            }

            var pr = parse.GetValue(number) ?? record.Origin?.PullRequest;
            if (pr is null)
            {
                cli.Err.WriteLine($"error: run '{id}' was not started from a pull request: pass --pr N");
                return ExitCodes.InvalidInput;
            }

            var settings = GitHubSettings.FromEnvironment(parse.GetValue(repo) ?? record.Origin?.Repository);
            var results = new RunResults(client.Store, GitOpsCli.Publisher(connection));
            var (report, comment) = await results.ReportAsync(new PullRequestBot(new GitHubRepoClient(settings)), record, pr.Value, ct);
            cli.Out.WriteLine($"run {id} ({report.State.ToString().ToLowerInvariant()}) on PR #{pr}: comment {comment.HtmlUrl} ({comment.Action})"
                + (report.HeadSha is null ? "; no head SHA recorded, no commit status" : $"; status {report.StatusState} on {report.HeadSha}"));
            if (report.HeatmapUrl is { } url)
            {
                cli.Out.WriteLine($"heatmap: {url}");
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    /// <summary>A sweep id: the sweep's comment (every variant and their comparison) and its commit status.</summary>
    private static async Task<int> ReportSweepAsync(CliContext cli, Workflows.Artifacts.StorageConnection connection, Workflows.Engine.EngineClient client,
        SweepRecord sweep, int? number, string? repo, CancellationToken ct)
    {
        var pr = number ?? sweep.Origin?.PullRequest;
        if (pr is null)
        {
            cli.Err.WriteLine($"error: sweep '{sweep.SweepId}' was not started from a pull request: pass --pr N");
            return ExitCodes.InvalidInput;
        }

        var settings = GitHubSettings.FromEnvironment(repo ?? sweep.Origin?.Repository);
        var (report, comment) = await new SweepResults(client.Store, GitOpsCli.Publisher(connection))
            .ReportAsync(new PullRequestBot(new GitHubRepoClient(settings)), sweep, pr.Value, ct);
        cli.Out.WriteLine($"sweep {sweep.SweepId} ({report.Finished} of {report.Variants.Count} variants finished) on PR #{pr}: comment {comment.HtmlUrl} ({comment.Action})"
            + (report.HeadSha is null ? "; no head SHA recorded, no commit status" : $"; status {report.StatusState} on {report.HeadSha}"));
        return ExitCodes.Ok;
    }
}
