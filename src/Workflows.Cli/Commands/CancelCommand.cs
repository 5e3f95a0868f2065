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
        var command = new Command("cancel", "Cancel a run: nothing new is scheduled; activities already running finish, their outputs stay cached.") { run, reason, hub };
        command.SetAction(async (parse, ct) => await EngineCli.WithClient(cli, parse.GetValue(hub)!, async client =>
        {
            var id = parse.GetValue(run)!;
            if (await client.GetAsync(id) is null)
            {
                cli.Err.WriteLine($"error: no run '{id}'");
                return ExitCodes.InvalidInput;
            }

            await client.CancelAsync(id, parse.GetValue(reason)!);
            cli.Out.WriteLine($"cancelled {id}");
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
