using System.CommandLine;
using DurableTask.Core;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Store;
using Workflows.Engine;
using Workflows.Engine.Hosting;
using Workflows.Engine.Jobs;
using Workflows.Engine.Telemetry;
using Workflows.Experiments.Paths;

namespace Workflows.Cli.Commands;

/// <summary><c>wf gpu-agent</c>: takes GPU jobs (the step types that need a GPU: training and the evaluations) until SIGTERM or Ctrl-C.</summary>
public static class GpuAgentCommand
{
    public static Command Create(CliContext cli)
    {
        var hub = EngineCli.HubOption();
        var device = new Option<string>("--device") { Description = "Training device: cpu, cuda, cuda:N.", DefaultValueFactory = _ => "cpu" };
        var gpus = new Option<int>("--gpus")
        {
            Description = "Train data-parallel on this machine's GPUs 0..N-1 (with --device cuda), one wf process per GPU over NCCL, as wf train --gpus N does; the evaluations run on the first. With --device cpu: N CPU processes over the TCP test transport.",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("gpu-agent", $"""
            Run a GPU agent: it claims queued GPU jobs (gpu-jobs/ in the store) with a blob lease, runs them (training
            from the prepared data, resuming from checkpoints when it takes over a job), renews the lease as heartbeat,
            uploads the outputs and signals the run.

            Same environment as 'wf worker' ({WorkerEnvironment.DataCacheVariable} holds the agent's data and checkpoint cache);
            on SIGTERM the agent takes no new job, gives the running one up to {WorkerEnvironment.ShutdownGraceVariable}
            (default 570 s) to finish, then hands it back (status queued, lease released: another agent resumes it
            from its checkpoints) and exits 0.

            Example:
              WF_HEARTBEAT_FILE=/tmp/wf/heartbeat wf gpu-agent --device cuda
              wf gpu-agent --device cuda --gpus 8
            """)
        {
            hub, device, gpus,
        };
        command.SetAction(async (parse, ct) =>
        {
            // The ranks take GPUs 0..N-1 (local rank = GPU): a fixed cuda:K would put them all on one GPU.
            if (parse.GetValue(gpus) is var ranks && (ranks < 1 || (ranks > 1 && parse.GetValue(device)!.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase))))
            {
                cli.Err.WriteLine($"error: --gpus {ranks}: give a count of 1 or more, with --device cuda (the ranks take GPUs 0..N-1) or cpu");
                return ExitCodes.Usage;
            }

            var environment = WorkerEnvironment.Read(WorkerRole.GpuAgent);
            string? where = null;
            using var loggers = TelemetryExport.CreateLoggerFactory(environment.LogLevel, cli.Err, TelemetryExport.IsConfigured(), () => where);
            using var export = TelemetryExport.StartOtlp("wf-gpu-agent");
            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, CancellationToken.None);
            where = storage.Connection.Description;
            var options = EngineCli.Options(parse.GetValue(hub)!, environment) with
            {
                TrainingDevice = parse.GetValue(device)!, TrainingRanks = ranks, LoggerFactory = loggers,
            };
            using var paths = PathPolicy.Use(WorkerPaths.Policy(options));
            var store = await BlobArtifactStore.OpenAsync(storage.Connection, options.ContainerName);
            var service = EngineHost.CreateService(storage.Connection, options);
            await service.CreateIfNotExistsAsync();
            var services = new EngineServices(store, options, new TaskHubClient(service));
            var agent = new GpuAgent(services, EngineHost.DefaultSteps(services).GpuJobs, cli.Out);
            cli.Out.WriteLine($"gpu-agent {agent.AgentId} on {options.TrainingDevice}{(options.TrainingRanks > 1 ? $" x{options.TrainingRanks}" : "")}, task hub '{options.TaskHubName}', container '{options.ContainerName}' ({storage.Connection.Description}). SIGTERM or Ctrl-C stops.");
            await WorkerLifetime.RunAgentAsync(agent, store, environment, ct, message => cli.Out.WriteLine($"gpu-agent: {message}"));
            return ExitCodes.Ok;
        });
        return command;
    }
}
