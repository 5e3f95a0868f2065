using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Workflows.Cli.GitOps;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf show NAME|RUN_ID</c>: an archived experiment's runs, or one run's headline results.</summary>
public static class ShowCommand
{
    public static Command Create(CliContext cli)
    {
        var target = new Argument<string>("name-or-run") { Description = "An archived experiment's name, or a run id." };
        var hub = EngineCli.HubOption();
        var command = new Command("show", """
            With an experiment name: its archive entry (path, content hash, archiving commit) and every run with status,
            mean needle score, duration, code commit and pull request. With a run id: that run's headline results and
            where it stands in the archive.

            Example:
              wf show smoke
            """)
        {
            target, hub,
        };
        command.SetAction(async (parse, ct) => await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, _) =>
        {
            var key = parse.GetValue(target)!;
            var archive = await ArchiveView.LoadAsync(client, ct);
            var match = archive.FirstOrDefault(a => a.Experiment.Name == key);
            if (match.Experiment is { } e)
            {
                cli.Out.WriteLine($"experiment {e.Name}  {e.Path}  hash {e.ContentHash}{(e.Commit is null ? "" : $"  archived at {e.Commit}")}");
                Print(match.Runs);
                return ExitCodes.Ok;
            }

            var record = (await client.Runs.GetAsync(key, ct))?.Record;
            if (record is null)
            {
                cli.Err.WriteLine($"error: '{key}' is neither an archived experiment nor a run id ('wf list' shows the archive)");
                return ExitCodes.InvalidInput;
            }

            var owner = archive.FirstOrDefault(a => a.Experiment.Runs.Contains(record.RunId)).Experiment;
            cli.Out.WriteLine($"run {record.RunId} of {record.ExperimentName} ({(owner is null ? "not archived" : $"archived under {owner.Name}")})");
            Print([new RunHeadline(record, await new RunOutputsReader(client.Store).NeedleAsync(record, ct))]);
            if (record.Error is not null)
            {
                cli.Out.WriteLine($"error: {record.Error}");
            }

            return ExitCodes.Ok;
        }, ct));
        return command;

        void Print(IReadOnlyList<RunHeadline> runs)
        {
            var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
            foreach (var h in new[] { "run", "status", "mean needle score", "submitted", "took", "code commit", "pull request", "rerun of" })
            {
                table.AddColumn(h);
            }

            foreach (var r in runs)
            {
                var rec = r.Record;
                table.AddRow(rec.RunId, rec.Status.ToString(), Score(r.Needle), rec.SubmittedAt.ToString("u", CultureInfo.InvariantCulture),
                    rec.Duration is { } d ? string.Create(CultureInfo.InvariantCulture, $"{d.TotalSeconds:0.0}s") : "",
                    rec.CodeCommit.Length > 12 ? rec.CodeCommit[..12] : rec.CodeCommit,
                    rec.Origin is { } o ? Markup.Escape($"{o.Repository}#{o.PullRequest}") : "", rec.RerunOf ?? "");
            }

            cli.Console.Write(table);
        }
    }

    /// <summary>The mean needle score, "disabled" when the experiment turned the evaluation off, or blank without a report.</summary>
    public static string Score(NeedleHeadline? needle) => needle?.Text("") ?? "";
}
