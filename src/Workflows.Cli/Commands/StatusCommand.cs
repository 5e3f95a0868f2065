using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Workflows.Cli.Commands;

/// <summary><c>wf status [RUN]</c>: runs with state and timings, or one run's steps.</summary>
public static class StatusCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Argument<string?>("run") { Description = "A run id; without it, every run is listed.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Machine-readable output." };
        var hub = EngineCli.HubOption();
        var command = new Command("status", """
            Without RUN: every run with its state, submission time and duration. With RUN: each step's state, items done,
            attempts, whether it came from the cache, timings, and the error with its step and shard.
            """)
        {
            run, json, hub,
        };
        command.SetAction(async (parse, ct) => await EngineCli.WithClient(cli, parse.GetValue(hub)!, async client =>
        {
            var id = parse.GetValue(run);
            if (id is null)
            {
                var runs = await client.ListAsync(ct);
                if (parse.GetValue(json))
                {
                    cli.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(runs, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web) { WriteIndented = true }));
                    return ExitCodes.Ok;
                }

                var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
                foreach (var h in new[] { "run", "experiment", "state", "submitted", "took", "error" })
                {
                    table.AddColumn(h);
                }

                foreach (var r in runs)
                {
                    table.AddRow(r.RunId, Markup.Escape(r.ExperimentName), r.Status.ToString(), r.SubmittedAt.ToString("u", CultureInfo.InvariantCulture),
                        r.Duration is { } d ? $"{d.TotalSeconds:0.0}s" : "", Markup.Escape(r.Error ?? ""));
                }

                cli.Console.Write(table);
                return ExitCodes.Ok;
            }

            var view = await client.GetAsync(id);
            if (view is null)
            {
                cli.Err.WriteLine($"error: no run '{id}'");
                return ExitCodes.InvalidInput;
            }

            EngineCli.PrintRun(cli, view, parse.GetValue(json));
            if (!parse.GetValue(json))
            {
                await PrintGpuJobsAsync(cli, client, id, ct);
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    /// <summary>The run's GPU jobs (train, evaluations, report): attempt, state, agent, queue wait and run time.</summary>
    private static async Task PrintGpuJobsAsync(CliContext cli, Workflows.Engine.EngineClient client, string runId, CancellationToken ct)
    {
        var jobs = await new Workflows.Engine.Jobs.GpuJobStore(client.Store).ListForRunAsync(runId, ct);
        if (jobs.Count == 0)
        {
            return;
        }

        cli.Out.WriteLine("GPU jobs (queue wait = enqueued until an agent claimed it):");
        var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (var h in new[] { "job", "state", "agent", "enqueued", "queue wait", "ran", "progress / error" })
        {
            table.AddColumn(h);
        }

        foreach (var (job, status) in jobs)
        {
            var wait = status?.StartedAt is { } claimed ? $"{(claimed - job.EnqueuedAt).TotalSeconds:0.0}s" : "";
            var ran = status?.StartedAt is { } s2 ? $"{(status.UpdatedAt - s2).TotalSeconds:0.0}s" : "";
            table.AddRow(Markup.Escape(job.JobId), Markup.Escape(status?.State ?? "?"), Markup.Escape(status?.Agent ?? ""),
                job.EnqueuedAt.ToString("HH:mm:ss", CultureInfo.InvariantCulture), wait, ran, Markup.Escape(status?.Error ?? status?.Progress ?? ""));
        }

        cli.Console.Write(table);
    }
}
