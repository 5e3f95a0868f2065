using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DurableTask.Core;
using Spectre.Console;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine;
using Workflows.Engine.Hosting;
using Workflows.Engine.Jobs;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary><c>wf run FILE</c>: submit an experiment and follow it, with a worker and a GPU agent inside this process.</summary>
public static class RunCommand
{
    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment file to run." };
        var hub = EngineCli.HubOption();
        var command = new Command("run", """
            Submit an experiment and follow it: a live view of steps, shards done, attempts and cached steps. This process
            also runs a worker and a GPU agent, so nothing else is needed locally. Ctrl-C detaches: the run is durable
            and continues whenever a worker runs ('wf worker', 'wf gpu-agent'); follow it again with 'wf watch RUN'.
            Storage: WF_STORAGE_CONNECTION_STRING, else a local Azurite (started for you when none is running).
            A sweep file (matrix:) runs every variant as its own run under one sweep id and ends with their comparison
            in out/sweeps/SWEEP/ (comparison.md, comparison.json, heatmaps).

            Examples:
              wf run experiments/smoke.yaml
              wf run experiments/smoke-sweep.yaml
            """)
        {
            file, hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (Workflows.Experiments.Matrix.SweepLoader.IsSweepFile(parse.GetValue(file)!))
            {
                return await Workflows.Cli.Sweeps.SweepCli.RunAsync(cli, parse.GetValue(file)!, parse.GetValue(hub)!, ct);
            }

            SubmitRequest request;
            try
            {
                request = EngineCli.Prepare(parse.GetValue(file)!);
            }
            catch (Exception e) when (e is ValidationException or FileNotFoundException or DirectoryNotFoundException or InvalidOperationException)
            {
                return EngineCli.Fail(cli, e);
            }

            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
            var options = EngineCli.Options(parse.GetValue(hub)!, parse.GetValue(file)!);
            await using var host = await EngineHost.StartAsync(storage.Connection, options,
                (_, services) => Workflows.Cli.GitOps.GitOpsWiring.AddRunFinishedHook(services, storage.Connection, cli.Err));
            using var agentStop = new CancellationTokenSource();
            var agent = new GpuAgent(host.Services, host.Steps.GpuJobs, cli.Err);
            var agentTask = agent.RunAsync(agentStop.Token);
            var runId = await host.Client.SubmitAsync(request);
            cli.Out.WriteLine($"submitted run {runId} ({request.Spec.Name}, workflow {request.Workflow.Name} v{request.Workflow.Version})");
            try
            {
                var view = await EngineCli.FollowAsync(cli, host.Client, runId, ct);
                if (view.Record.Status == RunStatus.Succeeded
                    && view.Result?.Outputs.Values.FirstOrDefault(o => o.Activity == StepContracts.Report.Type) is { } report)
                {
                    // The report lives in blob storage; a local copy is what a person opens.
                    var local = Path.Combine("out", "runs", runId, ReportJobHandler.OutputFolder);
                    var files = await StepOutputs.DownloadAsync(host.Services, report.Prefix, ReportJobHandler.OutputFolder, local, ct);
                    cli.Out.WriteLine($"report: {report.Prefix} in {storage.Connection.Description}");
                    cli.Out.WriteLine($"local copy: {string.Join(", ", files.Select(f => Path.GetRelativePath(Directory.GetCurrentDirectory(), f)))}");
                }

                return view.Record.Status == RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.InvalidInput;
            }
            catch (OperationCanceledException)
            {
                cli.Out.WriteLine($"detached from {runId}; it continues whenever a worker runs: 'wf worker' (and 'wf gpu-agent'), then 'wf watch {runId}'");
                return ExitCodes.Ok;
            }
            finally
            {
                await agentStop.CancelAsync();
                await agentTask;
            }
        });
        return command;
    }
}
