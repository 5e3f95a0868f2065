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
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
