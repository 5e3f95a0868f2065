using System.CommandLine;
using DurableTask.Core;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Store;
using Workflows.Engine;
using Workflows.Engine.Jobs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf gpu-agent</c>: takes GPU jobs (training) from the store until Ctrl-C.</summary>
public static class GpuAgentCommand
{
    public static Command Create(CliContext cli)
    {
        var hub = EngineCli.HubOption();
        var device = new Option<string>("--device") { Description = "Training device: cpu, cuda, cuda:N.", DefaultValueFactory = _ => "cpu" };
        var command = new Command("gpu-agent", """
            Run a GPU agent: it claims queued GPU jobs (gpu-jobs/ in the store) with a blob lease, runs them (training
            from the prepared data, resuming from checkpoints when it takes over a job), renews the lease as heartbeat,
            uploads the outputs and signals the run. Ctrl-C stops after checkpointing; another agent resumes the job.
            """)
        {
            hub, device,
        };
        command.SetAction(async (parse, ct) =>
        {
            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
            var options = EngineCli.Options(parse.GetValue(hub)!) with { TrainingDevice = parse.GetValue(device)! };
            var store = await BlobArtifactStore.OpenAsync(storage.Connection, options.ContainerName);
            var service = EngineHost.CreateService(storage.Connection, options);
            await service.CreateIfNotExistsAsync();
            var services = new EngineServices(store, options, new TaskHubClient(service));
            var agent = new GpuAgent(services, GpuJobHandlers.All(services), cli.Out);
            cli.Out.WriteLine($"gpu-agent {agent.AgentId} on {options.TrainingDevice} ({storage.Connection.Description}). Ctrl-C stops.");
            await agent.RunAsync(ct);
            return ExitCodes.Ok;
        });
        return command;
    }
}
