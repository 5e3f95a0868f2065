using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Workflows.Cli.GitOps;

namespace Workflows.Cli.Commands;

/// <summary><c>wf list</c>: the archive, one line per archived experiment with its latest run's headline results.</summary>
public static class ListCommand
{
    public static Command Create(CliContext cli)
    {
        var json = new Option<bool>("--json") { Description = "Machine-readable output." };
        var hub = EngineCli.HubOption();
        var command = new Command("list", """
            The archive: every archived experiment with its path, content hash, number of runs, and the latest run's
            status and mean needle score. 'wf show NAME' lists all its runs.

            Example:
              wf list
            """)
        {
            json, hub,
        };
        command.SetAction(async (parse, ct) => await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, _) =>
        {
            var archive = await ArchiveView.LoadAsync(client, ct);
            if (parse.GetValue(json))
            {
                cli.Out.WriteLine(JsonSerializer.Serialize(archive.Select(a => new
                {
                    a.Experiment.Name, a.Experiment.Path, a.Experiment.ContentHash, a.Experiment.Commit,
                    runs = a.Runs.Select(r => new { r.Record.RunId, status = r.Record.Status.ToString(), mean_needle_score = r.Needle?.Mean, needle_disabled = r.Needle?.Disabled ?? false }),
                }), new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
                return ExitCodes.Ok;
            }

            if (archive.Count == 0)
            {
                cli.Out.WriteLine("the archive is empty ('wf archive --commit SHA FILES...' records merged experiments)");
                return ExitCodes.Ok;
            }

            var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
            foreach (var h in new[] { "experiment", "path", "hash", "runs", "latest run", "status", "mean needle score" })
            {
                table.AddColumn(h);
            }

            foreach (var (e, runs) in archive)
            {
                var latest = runs.LastOrDefault();
                table.AddRow(Markup.Escape(e.Name), Markup.Escape(e.Path), e.ContentHash[..12], runs.Count.ToString(CultureInfo.InvariantCulture),
                    latest?.Record.RunId ?? "", latest?.Record.Status.ToString() ?? "", ShowCommand.Score(latest?.Needle));
            }

            cli.Console.Write(table);
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
