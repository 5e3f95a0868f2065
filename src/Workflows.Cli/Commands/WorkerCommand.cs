using System.CommandLine;
using Workflows.Artifacts.Azurite;
using Workflows.Engine;

namespace Workflows.Cli.Commands;

/// <summary><c>wf worker</c>: a DTFx worker running orchestrations and activities until Ctrl-C.</summary>
public static class WorkerCommand
{
    public static Command Create(CliContext cli)
    {
        var hub = EngineCli.HubOption();
        var command = new Command("worker", """
            Run a worker: it takes orchestration and activity work from the task hub until Ctrl-C. Start several (on one
            machine or many, same storage account) to share the work; a killed worker's activities are retried by the
            others after the work-item visibility timeout (30 s).
            """)
        {
            hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
            var options = EngineCli.Options(parse.GetValue(hub)!);
            await using var host = await EngineHost.StartAsync(storage.Connection, options,
                (_, services) => Workflows.Cli.GitOps.GitOpsWiring.AddRunFinishedHook(services, storage.Connection, cli.Err));
            cli.Out.WriteLine($"worker {options.WorkerId} on task hub '{options.TaskHubName}' ({storage.Connection.Description}); step types: {string.Join(", ", host.Steps.Types)}. Ctrl-C stops.");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }

            cli.Out.WriteLine("worker stopping");
            return ExitCodes.Ok;
        });
        return command;
    }
}
