using System.CommandLine;

namespace Workflows.Cli.Commands;

/// <summary><c>wf cancel RUN</c>: terminate the orchestration and mark the run cancelled.</summary>
public static class CancelCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Argument<string>("run") { Description = "The run id." };
        var reason = new Option<string>("--reason") { Description = "Recorded with the run.", DefaultValueFactory = _ => "cancelled by the user" };
        var hub = EngineCli.HubOption();
        var command = new Command("cancel", """
            Cancel a run: nothing new is scheduled; activities already running finish, their outputs stay cached; the run
            is marked Cancelled. A run of a pull request (wf pr submit) also gets its PR comment and commit status updated
            when GITHUB_TOKEN is set, since a terminated orchestration never reaches its own run-finished step.

            Example:
              wf cancel 20261128-141033-f3910e --reason "wrong mix"
            """) { run, reason, hub };
        command.SetAction(async (parse, ct) => await EngineCli.WithClient(cli, parse.GetValue(hub)!, async (client, connection) =>
        {
            var id = parse.GetValue(run)!;
            if (await client.GetAsync(id) is null)
            {
                cli.Err.WriteLine($"error: no run '{id}'");
                return ExitCodes.InvalidInput;
            }

            await client.CancelAsync(id, parse.GetValue(reason)!);
            cli.Out.WriteLine($"cancelled {id}");
            var record = (await client.GetAsync(id))!.Record;
            if (record.Origin is { } origin && Workflows.Cli.GitOps.GitOpsWiring.CreateHook(client.Store, connection) is { } hook)
            {
                await hook.Hook.OnRunFinishedAsync(record, ct);
                cli.Out.WriteLine($"reported on {origin.Repository}#{origin.PullRequest}");
            }
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
