using System.Globalization;
using System.Text.Json;
using Workflows.Cli.Commands;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Sweeps;

/// <summary><c>wf plan SWEEP_FILE</c>: the sweep's variants, totals and shared steps, as tables, Markdown or JSON.</summary>
public static class SweepPlanView
{
    /// <param name="optionsFor">The plan options of one variant (its corpus's statistics, with --input its selection), or the exit code of an error it printed.</param>
    public static async Task<int> RunAsync(CliContext cli, string path, string? variant, bool json, bool markdown,
        Func<ExperimentSpec, Task<(PlanOptions? Options, int Exit)>> optionsFor)
    {
        var workflows = RepositoryLayout.FindWorkflowsDirectory(path);
        var sweep = SweepLoader.LoadFile(path, new LoadOptions(WorkflowsDirectory: workflows));
        if (!sweep.IsValid)
        {
            DiagnosticPrinter.Print(cli, sweep.Diagnostics);
            return ExitCodes.InvalidInput;
        }

        if (variant is not null)
        {
            if (sweep.Variant(variant) is not { } one)
            {
                cli.Err.WriteLine($"error: {path} has no variant '{variant}'; its variants: {string.Join(", ", sweep.Variants.Select(v => v.Name))}");
                return ExitCodes.Usage;
            }

            var (options, exit) = await optionsFor(one.Spec);
            if (options is null)
            {
                return exit;
            }

            PlanCommand.Print(cli, Planner.Create(one.Spec, options), json, markdown);
            return ExitCodes.Ok;
        }

        var optionsByVariant = new Dictionary<string, PlanOptions>(StringComparer.Ordinal);
        foreach (var v in sweep.Variants)
        {
            var (options, exit) = await optionsFor(v.Spec);
            if (options is null)
            {
                return exit;
            }

            optionsByVariant[v.Name] = options;
        }

        var plan = SweepPlanner.Create(sweep, SweepPlanner.TemplateFor(sweep, workflows), v => optionsByVariant[v.Name]);
        if (json)
        {
            cli.Out.WriteLine(JsonSerializer.Serialize(plan, PlanCommand.JsonOptions));
        }
        else if (markdown)
        {
            cli.Out.Write(ToMarkdown(plan));
        }
        else
        {
            PlanCommand.RenderTables(cli, Sections(plan));
        }

        return ExitCodes.Ok;
    }

    public static string ToMarkdown(SweepPlan plan) => PlanCommand.TablesToMarkdown(Sections(plan));

    /// <summary>The sweep as (section, header, rows): the same numbers in the terminal, in Markdown and in the PR comment.</summary>
    public static IReadOnlyList<(string Title, string[] Header, List<string[]> Rows)> Sections(SweepPlan plan)
    {
        var t = plan.Totals;
        var selected = t.SelectedGpu is null ? null : t.Gpus.FirstOrDefault(g => g.Gpu == t.SelectedGpu);
        var summary = new List<string[]>
        {
            new[] { "sweep", $"{plan.Sweep} ({plan.File}): {t.Variants} variants, each its own experiment and content hash" },
            new[] { "tokens", $"{PlanCommand.Tokens(t.TokenBudget)} in all ({PlanCommand.Tokens(t.TrainedTokens)} trained)" },
            new[] { "training FLOPs", PlanCommand.N(t.TrainingFlops, "0.00e+00") },
            new[] { "needle cells", t.NeedleCells.ToString("N0", CultureInfo.InvariantCulture) },
        };
        if (selected is not null)
        {
            var wall = t.GpuCount > 0 ? $", {selected.GpuHours / t.GpuCount / 24:#,0.0} days on {t.GpuCount} GPUs one variant after another" : "";
            summary.Add(["GPU time", $"{Hours(selected.GpuHours)} GPU-hours on {(t.GpuCount > 0 ? $"{t.GpuCount}x " : "")}{selected.Gpu}, ${Usd(selected.CostUsd)}{wall}"
                + (selected.GpuHoursWithoutSharing > selected.GpuHours ? $" (shared training counted once; {Hours(selected.GpuHoursWithoutSharing)} GPU-hours apart)" : "")]);
        }

        var axes = plan.Variants.SelectMany(v => v.Values.Keys).Distinct(StringComparer.Ordinal).ToList();
        var gpu = t.SelectedGpu ?? plan.Variants[0].Plan.Compute.SelectedGpu;
        var variants = plan.Variants.Select(v =>
        {
            // No estimate for a CPU run (resources.gpu: cpu): nothing to pay for.
            var estimate = v.Plan.Compute.Estimates.FirstOrDefault(e => e.Gpu == v.Plan.Compute.SelectedGpu);
            return (string[])[
                v.Index.ToString(CultureInfo.InvariantCulture), v.Name,
                .. axes.Select(a => v.Values.GetValueOrDefault(a) ?? "–"),
                v.ContentHash[..12], PlanCommand.Tokens(v.Plan.Data.TokenBudget), v.Plan.Training.Steps.ToString("N0", CultureInfo.InvariantCulture),
                estimate is null ? "–" : Hours(estimate.GpuHours), estimate is null ? "–" : Usd(estimate.CostUsd),
            ];
        }).ToList();
        var gpus = t.Gpus.Select(g => new[]
        {
            g.Gpu + (g.Gpu == t.SelectedGpu ? " *" : ""), Hours(g.GpuHours), Usd(g.CostUsd), Hours(g.GpuHoursWithoutSharing), Usd(g.CostUsdWithoutSharing),
        }).ToList();
        var sections = new List<(string, string[], List<string[]>)>
        {
            ("Sweep", ["", ""], summary),
            ("Variants", ["#", "variant", .. axes, "hash", "tokens", "steps", $"GPU-hours ({gpu})", "cost (USD)"], variants),
            ("Estimated GPU time of the sweep (* = resources.gpu)", ["gpu", "GPU-hours", "cost (USD)", "GPU-hours, nothing shared", "cost, nothing shared"], gpus),
        };
        if (plan.Steps is { } steps)
        {
            sections.Add(("Steps shared through the cache", ["step", "executions", "shared by", "saves"], [.. steps.Select(s => new[]
            {
                s.Step,
                $"{s.Executions} for {s.Variants} variants",
                s.Groups.Count == 0 ? "none" : string.Join("; ", s.Groups.Select(g => g.Count == s.Variants ? $"all {g.Count}" : string.Join(", ", g))),
                s.Saves ?? "–",
            })]));
        }

        if (plan.Notes.Count > 0)
        {
            sections.Add(("Notes", ["#", "note"], [.. plan.Notes.Select((n, i) => new[] { (i + 1).ToString(CultureInfo.InvariantCulture), n })]));
        }

        return sections;
    }

    private static string Hours(double h) => h.ToString(h < 10 ? "#,0.00" : "#,0.0", CultureInfo.InvariantCulture);

    private static string Usd(double usd) => usd.ToString("#,0", CultureInfo.InvariantCulture);
}
