using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Workflows.Engine;
using Workflows.Engine.Jobs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf status [RUN]</c>: runs with state and timings, or one run's steps.</summary>
public static class StatusCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Argument<string?>("run") { Description = "A run id or a sweep id; without it, every run is listed.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Machine-readable output." };
        var hub = EngineCli.HubOption();
        var command = new Command("status", """
            Without RUN: every run with its state, submission time and duration. With RUN: each step's state, items done,
            attempts, whether it came from the cache, timings, and the error with its step and shard. With a sweep id: every
            variant with its run, state, the step it is at, its duration and error.
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

            RunView? view;
            try
            {
                view = await client.GetAsync(id);
            }
            catch (RunRecordMissingException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            if (view is null && await new Workflows.Artifacts.Runs.SweepRecordStore(client.Store).GetAsync(id, ct) is { } sweep)
            {
                return await Workflows.Cli.Sweeps.SweepCli.PrintStatusAsync(cli, client, sweep.Record, parse.GetValue(json), ct);
            }

            if (view is null)
            {
                cli.Err.WriteLine($"error: no run or sweep '{id}' in {client.Where ?? "this store"}");
                return ExitCodes.InvalidInput;
            }

            var jobs = await new GpuJobStore(client.Store).ListForRunAsync(id, ct);
            EngineCli.PrintRun(cli, view, parse.GetValue(json), jobs);
            if (!parse.GetValue(json))
            {
                PrintGpuJobs(cli, jobs);
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    /// <summary>
    /// The run's GPU jobs (one per attempt of a GPU step), and under each every claim: which agent ran it, from when to
    /// when, and why that ended (succeeded, failed, lease lost, lease lapsed: killed or cut off, handed back at shutdown).
    /// </summary>
    private static void PrintGpuJobs(CliContext cli, IReadOnlyList<(GpuJob Job, GpuJobStatus? Status)> jobs)
    {
        if (jobs.Count == 0)
        {
            return;
        }

        cli.Out.WriteLine("GPU jobs (queue wait = enqueued until first claimed; one line per agent that ran it):");
        var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (var h in new[] { "job", "state", "queue wait", "claim", "agent", "started", "ended", "ran", "why it ended / progress" })
        {
            table.AddColumn(h);
        }

        foreach (var (job, status) in jobs)
        {
            var claims = status?.Claims ?? [];
            var wait = claims.Count > 0 ? $"{(claims[0].StartedAt - job.EnqueuedAt).TotalSeconds:0.0}s" : "";
            if (claims.Count == 0)
            {
                table.AddRow(Markup.Escape(job.JobId), Markup.Escape(status?.State ?? "?"), wait, "", "", "", "", "", Markup.Escape(status?.Error ?? status?.Progress ?? ""));
            }

            for (var i = 0; i < claims.Count; i++)
            {
                var c = claims[i];
                var end = c.EndedAt ?? (i == claims.Count - 1 ? status!.UpdatedAt : (DateTimeOffset?)null);
                var why = c.Ended ?? (status!.State == GpuJobStates.Running ? $"running, last heartbeat {status.UpdatedAt.ToString("HH:mm:ss", CultureInfo.InvariantCulture)}: {status.Progress}" : status.Progress ?? "");
                table.AddRow(
                    i == 0 ? Markup.Escape(job.JobId) : "",
                    i == 0 ? Markup.Escape(status!.State) : "",
                    i == 0 ? wait : "",
                    (i + 1).ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(c.Agent),
                    c.StartedAt.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                    c.EndedAt?.ToString("HH:mm:ss", CultureInfo.InvariantCulture) ?? "",
                    end is { } e ? $"{(e - c.StartedAt).TotalSeconds:0.0}s" : "",
                    Markup.Escape(why));
            }
        }

        cli.Console.Write(table);
    }
}
