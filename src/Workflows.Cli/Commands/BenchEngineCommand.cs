using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Runs;
using Workflows.Engine;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;

namespace Workflows.Cli.Commands;

/// <summary><c>wf bench engine</c>: empty-activity fan-outs through the real orchestration on the configured storage.</summary>
public static class BenchEngineCommand
{
    public static Command Create(CliContext cli)
    {
        var counts = new Option<int[]>("--count") { Description = "Fan-out sizes.", DefaultValueFactory = _ => [64, 512], AllowMultipleArgumentsPerToken = true };
        var repeat = new Option<int>("--repeat") { Description = "Runs per size.", DefaultValueFactory = _ => 3 };
        var experiment = new Option<string>("--experiment") { Description = "Experiment file whose spec the runs carry.", DefaultValueFactory = _ => Path.Combine("experiments", "smoke.yaml") };
        var command = new Command("engine", """
            Engine overhead: a one-step workflow fanning out N empty activities, through the same orchestration, run
            records and worker settings as real runs, on a fresh task hub (deleted afterwards). Reports end-to-end
            seconds (submit to run record 'Succeeded') and activities/s.

            Example:
              wf bench engine --count 64 512 --repeat 3
            """)
        {
            counts, repeat, experiment,
        };
        command.SetAction(async (parse, ct) =>
        {
            var request = EngineCli.Prepare(parse.GetValue(experiment)!);
            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
            var options = EngineCli.Options(EngineOptions.UniqueHubName("bench"));
            var host = await EngineHost.StartAsync(storage.Connection, options, (registry, _) => registry.Register(EmptyFanOutStep.Create()));
            var client = host.Client;
            try
            {
                {
                    cli.Out.WriteLine($"task hub {options.TaskHubName} on {storage.Connection.Description}; {Environment.ProcessorCount} cores");
                    foreach (var n in parse.GetValue(counts)!)
                    {
                        for (var i = 0; i < parse.GetValue(repeat); i++)
                        {
                            var step = new BoundStep("empty", EmptyFanOutStep.Type, [], "shards", n, new Dictionary<string, string>(), 3,
                                TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(10), false);
                            var watch = Stopwatch.StartNew();
                            var runId = await client.SubmitAsync(request with { Workflow = new BoundWorkflow("bench", 1, [step]) });
                            var view = await client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(100), cancellationToken: ct);
                            watch.Stop();
                            var seconds = watch.Elapsed.TotalSeconds;
                            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"fan-out {n,4}: {seconds,6:0.00} s end to end, {n / seconds,6:0.0} activities/s ({view.Record.Status})"));
                            if (view.Record.Status != RunStatus.Succeeded)
                            {
                                cli.Err.WriteLine($"error: {view.Record.Error}");
                                return ExitCodes.InvalidInput;
                            }
                        }
                    }
                }
            }
            finally
            {
                // Stop the worker first: deleting the hub under a running worker leaves its partition manager retrying.
                await host.DisposeAsync();
                await client.DeleteHubAsync();
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
