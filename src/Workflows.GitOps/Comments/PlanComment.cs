using System.Globalization;
using System.Text;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Guard;

namespace Workflows.GitOps.Comments;

/// <summary>
/// One experiment file of a pull request, validated and (when valid) planned. <see cref="PlanMarkdown"/> is the
/// planner's Markdown (what <c>wf plan --markdown</c> prints), taken as text so the comment and the CLI show the same
/// tables. <see cref="Errors"/> non-empty means the file is invalid and there is no plan.
/// </summary>
/// For a sweep file, <see cref="Sweep"/> is its plan, <see cref="PlanMarkdown"/> the sweep's tables
/// (<c>wf plan --markdown</c>) and <see cref="VariantPlanMarkdown"/> each variant's own plan.
public sealed record PlanCommentInput(
    string File,
    string? HeadSha,
    Plan? Plan,
    string? PlanMarkdown,
    IReadOnlyList<Diagnostic> Errors,
    string RunLabel = RunGuard.DefaultRunLabel,
    string CheckName = "experiment-pr / plan",
    SweepPlan? Sweep = null,
    IReadOnlyList<string>? VariantPlanMarkdown = null)
{
    /// <summary>The sticky comment's key: the file stem, which the repository policy makes equal to the experiment name.</summary>
    public string Experiment => PlanComment.ExperimentNameFor(File);
}

/// <summary>Renders the plan section of an experiment's sticky comment.</summary>
public static class PlanComment
{
    /// <summary>The experiment a file stands for: its file name without extension (an invalid file may have no name: key).</summary>
    public static string ExperimentNameFor(string file) => Path.GetFileNameWithoutExtension(file);

    public static string Render(PlanCommentInput input)
    {
        var sb = new StringBuilder();
        var at = input.HeadSha is null ? "" : $" at {Md.Code(Md.ShortSha(input.HeadSha))}";
        if (input.Errors.Count > 0)
        {
            RenderErrors(sb, input, at);
            return sb.ToString();
        }

        if (input.Sweep is not null)
        {
            return SweepPlanComment.Render(input, at);
        }

        var plan = input.Plan ?? throw new ArgumentException("a valid file needs its plan", nameof(input));
        sb.Append(CultureInfo.InvariantCulture, $"### Experiment {Md.Code(plan.Experiment)}: plan\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"{Md.Code(input.File)}{at} · content hash {Md.Code(plan.ContentHash[..12])}\n\n");
        RenderCompute(sb, plan.Compute);
        if (!string.IsNullOrWhiteSpace(input.PlanMarkdown))
        {
            sb.Append("<details><summary>Full plan: tokens per source, steps, FLOPs, artifacts, assumptions</summary>\n\n");
            sb.Append(input.PlanMarkdown.Trim('\n')).Append("\n\n</details>\n\n");
        }

        sb.Append(CultureInfo.InvariantCulture,
            $"A maintainer starts the run by commenting `/run {plan.Experiment}` or adding the label {Md.Code(input.RunLabel)}. Pull requests from forks are never run.\n");
        return sb.ToString();
    }

    private static void RenderErrors(StringBuilder sb, PlanCommentInput input, string at)
    {
        var n = input.Errors.Count;
        sb.Append(CultureInfo.InvariantCulture, $"### Experiment {Md.Code(input.Experiment)}: validation failed\n\n");
        sb.Append(CultureInfo.InvariantCulture,
            $"{Md.Code(input.File)}{at} has {n} error{(n == 1 ? "" : "s")}. The check **{Md.Text(input.CheckName)}** fails until {(n == 1 ? "it is" : "they are")} fixed; there is no plan and no run before that.\n\n");
        foreach (var d in input.Errors)
        {
            var where = d.Location.Line > 0 ? $"{d.Location.File}:{d.Location.Line}:{d.Location.Column}" : d.Location.File;
            sb.Append(CultureInfo.InvariantCulture, $"- {Md.Code(where)} {d.Code}");
            if (!string.IsNullOrEmpty(d.Path))
            {
                sb.Append(' ').Append(Md.Code(d.Path));
            }

            sb.Append(": ").Append(Md.Text(d.Message));
            if (d.Hint is not null)
            {
                sb.Append(" (hint: ").Append(Md.Text(d.Hint)).Append(')');
            }

            sb.Append('\n');
        }

        sb.Append("\nRun ").Append(Md.Code($"wf validate {input.File}")).Append(" locally to see the same list.\n");
    }

    internal static void RenderCompute(StringBuilder sb, ComputePlan compute)
    {
        var selected = compute.Estimates.FirstOrDefault(e => e.Gpu == compute.SelectedGpu);
        if (selected is not null)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"**Estimated training compute: {Hours(selected.GpuHours)} GPU-hours on {compute.GpuCount}× {compute.SelectedGpu}, about {Wall(selected.WallHours)} wall time, ${selected.CostUsd.ToString("#,0", CultureInfo.InvariantCulture)}** at the assumed price.\n\n");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"**Runs on {compute.SelectedGpu}** (resources.gpu); no GPU cost. GPU estimates for the same work, for reference:\n\n");
        }

        sb.Append("| GPU | GPU-hours | wall time | cost (USD) |\n|---|---:|---:|---:|\n");
        foreach (var e in compute.Estimates)
        {
            var name = e.Gpu == compute.SelectedGpu ? $"**{e.Gpu}** (resources.gpu)" : e.Gpu;
            sb.Append(CultureInfo.InvariantCulture,
                $"| {name} | {Hours(e.GpuHours)} | {Wall(e.WallHours)} on {compute.GpuCount} | {e.CostUsd.ToString("#,0", CultureInfo.InvariantCulture)} |\n");
        }

        sb.Append('\n');
    }

    internal static string Hours(double h) => h.ToString(h < 10 ? "#,0.00" : "#,0.0", CultureInfo.InvariantCulture);

    internal static string Wall(double hours) => hours >= 48
        ? (hours / 24).ToString("#,0.0", CultureInfo.InvariantCulture) + " d"
        : hours.ToString("#,0.0", CultureInfo.InvariantCulture) + " h";
}

/// <summary>Builds <see cref="PlanCommentInput"/>s from files on disk with the real loader and planner.</summary>
public static class PlanCommentInputs
{
    /// <param name="path">The experiment file on disk.</param>
    /// <param name="displayPath">How the comment names it (repository-relative, e.g. experiments/smoke.yaml).</param>
    /// <param name="headSha">The commit the file was read at.</param>
    /// <param name="toMarkdown">The planner's Markdown rendering (the CLI's <c>wf plan --markdown</c>), so comment and CLI agree.</param>
    /// <param name="sweepToMarkdown">The sweep planner's Markdown (<c>wf plan --markdown</c> of a sweep file); without it a sweep file is planned without its tables.</param>
    public static PlanCommentInput FromFile(string path, string displayPath, string? headSha, Func<Plan, string> toMarkdown, LoadOptions? options = null, PlanOptions? planOptions = null,
        Func<SweepPlan, string>? sweepToMarkdown = null)
    {
        if (SweepLoader.IsSweepFile(path))
        {
            var sweep = SweepLoader.LoadFile(path, options);
            if (!sweep.IsValid)
            {
                return new PlanCommentInput(displayPath, headSha, null, null, Located(sweep.Diagnostics, displayPath));
            }

            // Each variant with the repository's measured statistics of its corpus, as a single experiment gets them below.
            var sweepPlan = SweepPlanner.Create(sweep, SweepPlanner.TemplateFor(sweep, options?.WorkflowsDirectory),
                v => planOptions ?? RepositoryStatistics(v.Spec, path));
            return new PlanCommentInput(displayPath, headSha, null, sweepToMarkdown?.Invoke(sweepPlan), [],
                Sweep: sweepPlan, VariantPlanMarkdown: [.. sweepPlan.Variants.Select(v => toMarkdown(v.Plan))]);
        }

        var loaded = ExperimentLoader.LoadFile(path, options);
        if (!loaded.IsValid)
        {
            return new PlanCommentInput(displayPath, headSha, null, null, Located(loaded.Diagnostics, displayPath));
        }

        var plan = Planner.Create(loaded.Spec!, planOptions ?? RepositoryStatistics(loaded.Spec!, path));
        return new PlanCommentInput(displayPath, headSha, plan, toMarkdown(plan), []);
    }

    /// <summary>The repository's measured statistics of the experiment's corpus (corpora/NAME.stats.json), when it has them.</summary>
    private static PlanOptions? RepositoryStatistics(ExperimentSpec spec, string path) =>
        CorpusStatisticsFiles.Find(spec, path) is { } stats ? new PlanOptions(CorpusStatistics.Read(stats)) : null;

    private static List<Diagnostic> Located(IEnumerable<Diagnostic> diagnostics, string displayPath) =>
        [.. diagnostics.Select(d => d with { Location = d.Location with { File = displayPath } })];
}
