using System.CommandLine;
using Workflows.Artifacts.Runs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf watch RUN</c>: follow a run until it finishes (Ctrl-C stops watching, not the run).</summary>
public static class WatchCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Argument<string>("run") { Description = "The run id." };
        var hub = EngineCli.HubOption();
        var command = new Command("watch", "Follow a run: a line per step change, until it finishes. Ctrl-C stops watching; the run goes on.") { run, hub };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                return await EngineCli.WithClient(cli, parse.GetValue(hub)!, async client =>
                {
                    var view = await EngineCli.FollowAsync(cli, client, parse.GetValue(run)!, ct);
                    return view.Record.Status == RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.InvalidInput;
                }, ct);
            }
            catch (OperationCanceledException)
            {
                return ExitCodes.Ok;
            }
            catch (InvalidOperationException e)
            {
                return EngineCli.Fail(cli, e);
            }
        });
        return command;
    }
}
