using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Workflows.Artifacts.Runs;
using Workflows.Evaluation.Comparison;
using Workflows.Evaluation.Needle;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf compare RUN|SWEEP... [--baseline RUN]</c>: runs side by side against a baseline, as Markdown and JSON.</summary>
public static class CompareCommand
{
    public static Command Create(CliContext cli)
    {
        var ids = new Argument<string[]>("ids") { Description = "Run ids and sweep ids (a sweep stands for its variants, in order).", Arity = ArgumentArity.OneOrMore };
        var baseline = new Option<string?>("--baseline")
        {
            Description = "The run to compare against: a run id or an experiment name among the compared runs. Default: the run the others name in gitops.baseline, else the first.",
        };
        var output = new Option<string?>("--out") { Description = "Folder for comparison.md, comparison.json and the heatmaps. Default: out/compare/<first id>." };
        var json = new Option<bool>("--json") { Description = "Print comparison.json instead of the Markdown." };
        var threshold = new Option<double>("--threshold")
        {
            Description = "Needle score (0-1) the effective length is measured against (RULER's 0.856 by default).",
            DefaultValueFactory = _ => LongContextSummary.DefaultThreshold,
        };
        var hub = EngineCli.HubOption();
        var command = new Command("compare", """
            Compare runs, or a sweep's variants, against a baseline: the parameters that differ (only those), the mean
            needle score and the mean at each context length, the effective length (the longest length up to which every
            length's mean stays at or above the threshold, as RULER reports it), the heatmaps side by side and each run's
            difference heatmap against the baseline, and the loss by domain and length bucket in Table 5's layout with the
            paper's colours (red: Δ > +0.01, green: Δ < −0.01). Numbers come from the runs' raw results in the store,
            computed as their reports compute them. Writes comparison.md, comparison.json and the PNGs; prints the
            Markdown (or the JSON with --json).

            Examples:
              wf compare sweep-20261201-101500-3fa9c2
              wf compare RUN_A RUN_B RUN_C --baseline RUN_A --out out/lr-study
              wf compare pr42-paper-table3-0123456789 --baseline original-5b-80k --json
            """)
        {
            ids, baseline, output, json, threshold, hub,
        };
        command.SetAction(async (parse, ct) => await EngineCli.WithClient(cli, parse.GetValue(hub)!, async client =>
        {
            var given = parse.GetValue(ids)!;
            var loader = new RunComparisonLoader(client.Store);
            IReadOnlyList<ComparedRun> runs;
            try
            {
                runs = (await loader.LoadAsync(given, ct)).DistinctBy(r => r.RunId).ToList();
            }
            catch (KeyNotFoundException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            string? baselineRun = null;
            if (parse.GetValue(baseline) is { } wanted)
            {
                baselineRun = runs.FirstOrDefault(r => r.RunId == wanted)?.RunId ?? runs.FirstOrDefault(r => r.Experiment == wanted)?.RunId;
                if (baselineRun is null)
                {
                    cli.Err.WriteLine($"error: baseline '{wanted}' is neither the id nor the experiment of a compared run ({string.Join(", ", runs.Select(r => $"{r.RunId} {r.Experiment}"))})");
                    return ExitCodes.Usage;
                }
            }
            else if (given.Length == 1 && await loader.Sweeps.GetAsync(given[0], ct) is { Record.Baseline: { } sweepBaseline })
            {
                baselineRun = runs.FirstOrDefault(r => r.Experiment == sweepBaseline)?.RunId;
            }

            var folder = parse.GetValue(output) ?? Path.Combine("out", "compare", given[0] + (given.Length > 1 ? $"-and-{given.Length - 1}-more" : ""));
            var title = given.Length == 1 && runs.Count > 1 ? $"sweep {given[0]}" : string.Join(", ", given);
            var files = ComparisonMarkdown.Write(folder, new ComparisonInput(title, runs, baselineRun, parse.GetValue(threshold)));
            cli.Out.Write(parse.GetValue(json) ? File.ReadAllText(files.Json) : File.ReadAllText(files.Markdown));
            var notSucceeded = runs.Count(r => !r.Succeeded);
            cli.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"compared {runs.Count} run(s) against {files.Comparison.BaselineRun.Experiment} ({files.Comparison.Baseline}){(notSucceeded > 0 ? $"; {notSucceeded} not succeeded, shown without results" : "")}; wrote {files.Markdown}, {files.Json} and {files.Images.Count} heatmap(s)"));
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
