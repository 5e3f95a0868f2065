using System.CommandLine;
using Workflows.Artifacts.Azurite;
using Workflows.Engine;
using Workflows.Engine.Hosting;
using Workflows.Engine.Telemetry;
using Workflows.Experiments.Paths;

namespace Workflows.Cli.Commands;

/// <summary><c>wf worker</c>: a DTFx worker running orchestrations and activities until SIGTERM or Ctrl-C.</summary>
public static class WorkerCommand
{
    public static Command Create(CliContext cli)
    {
        var hub = EngineCli.HubOption();
        var command = new Command("worker", $"""
            Run a worker: it takes orchestration and activity work from the task hub until SIGTERM or Ctrl-C. Start several
            (on one machine or many, same storage account) to share the work; a killed worker's activities are retried by
            the others after the work-item visibility timeout (30 s).

            Configured by environment only (the Kubernetes ConfigMap sets these):
              WF_STORAGE_CONNECTION_STRING or WF_STORAGE_ACCOUNT_URL (Entra ID: workload/managed identity, az login)
              {WorkerEnvironment.TaskHubVariable} (default wf), {WorkerEnvironment.ArtifactsContainerVariable} (default {WorkerEnvironment.DefaultContainer}), {WorkerEnvironment.WorkDirVariable} (scratch)
              WF_DATA_ROOTS: ':'-separated folders the readers may open besides the cache (default: the working folder)
              {WorkerEnvironment.LogLevelVariable} (Information): JSON log lines on stderr
              {WorkerEnvironment.HeartbeatFileVariable}: rewritten every 10 s while storage answers (the pods' probes read its age)
              {WorkerEnvironment.ShutdownGraceVariable} (100): on SIGTERM, stop taking work and let running activities finish
                for this long; what is still running is handed back (redelivered to another worker); exit 0
              OTEL_EXPORTER_OTLP_ENDPOINT: export traces and metrics over OTLP

            Example:
              WF_HEARTBEAT_FILE=/tmp/wf/heartbeat wf worker
            """)
        {
            hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            var environment = WorkerEnvironment.Read(WorkerRole.Worker);
            string? where = null;
            using var loggers = TelemetryExport.CreateLoggerFactory(environment.LogLevel, cli.Err, TelemetryExport.IsConfigured(), () => where);
            using var export = TelemetryExport.StartOtlp("wf-worker");
            var log = loggers.CreateLogger("wf.worker");
            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, CancellationToken.None);
            where = storage.Connection.Description;
            var options = EngineCli.Options(parse.GetValue(hub)!, environment) with { LoggerFactory = loggers };
            using var paths = PathPolicy.Use(WorkerPaths.Policy(options));
            var host = await EngineHost.StartAsync(storage.Connection, options,
                (_, services) => Workflows.Cli.GitOps.GitOpsWiring.AddRunFinishedHook(services, storage.Connection, cli.Err));
            try
            {
                cli.Out.WriteLine($"worker {options.WorkerId} on task hub '{options.TaskHubName}', container '{options.ContainerName}' ({storage.Connection.Description}); step types: {string.Join(", ", host.Steps.Types)}. SIGTERM or Ctrl-C stops.");
                await WorkerLifetime.RunWorkerAsync(host, environment, ct, message =>
                {
                    if (log.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Information))
                    {
                        Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(log, "{Message}", message);
                    }
                    cli.Out.WriteLine($"worker: {message}");
                });
            }
            finally
            {
                await host.DisposeAsync();
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// How long System.CommandLine waits for a command after SIGTERM/SIGINT before forcing exit code 143/130: the
    /// worker's and agent's grace period plus room to release leases; the 2 s default for every other command.
    /// </summary>
    public static TimeSpan? TerminationTimeout(ParseResult parse)
    {
        var name = parse.CommandResult.Command.Name;
        if (name is not ("worker" or "gpu-agent"))
        {
            return TimeSpan.FromSeconds(2);
        }

        try
        {
            var environment = WorkerEnvironment.Read(name == "worker" ? WorkerRole.Worker : WorkerRole.GpuAgent);
            return environment.ShutdownGrace + TimeSpan.FromSeconds(15);
        }
        catch (ArgumentException)
        {
            return TimeSpan.FromSeconds(2); // the command itself reports the bad setting
        }
    }
}
