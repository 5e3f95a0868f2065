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
        var workers = new Option<int[]>("--workers")
        {
            Description = "Scale-out mode: for each N, start N 'wf worker' processes + 1 'wf gpu-agent' process and run a real prepare-data of --shards shards of the experiment's data.",
            AllowMultipleArgumentsPerToken = true,
        };
        var shards = new Option<int>("--shards") { Description = "Scale-out mode: shards of the prepare-data run.", DefaultValueFactory = _ => 64 };
        var shardTokens = new Option<long>("--shard-tokens") { Description = "Scale-out mode: token budget per shard (the run's token_budget = shards x this).", DefaultValueFactory = _ => 8192 };
        var command = new Command("engine", """
            Engine overhead: a one-step workflow fanning out N empty activities, through the same orchestration, run
            records and worker settings as real runs, on a fresh task hub (deleted afterwards). Reports end-to-end
            seconds (submit to run record 'Succeeded') and activities/s.

            With --workers N...: scale-out proof instead. N separate 'wf worker' processes and one 'wf gpu-agent'
            process on one storage account run a real prepare-data of --shards shards (fresh seed per run, so nothing is
            cached); the published manifest is checked (every shard exactly once) and each worker's share is shown.

            Examples:
              wf bench engine --count 64 512 --repeat 3
              wf bench engine --workers 1 3 --shards 64 --repeat 2
            """)
        {
            counts, repeat, experiment, workers, shards, shardTokens,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(workers) is { Length: > 0 } workerCounts)
            {
                return await BenchScaleOut.RunAsync(cli, parse.GetValue(experiment)!, workerCounts, parse.GetValue(shards), parse.GetValue(shardTokens), parse.GetValue(repeat), ct);
            }

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
                            var step = new BoundStep("empty", EmptyFanOutStep.Type, [], "shards", n, NoParameters.Json, 3,
                                TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(10));
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
