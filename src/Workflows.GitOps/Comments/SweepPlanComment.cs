using System.Globalization;
using System.Text;

namespace Workflows.GitOps.Comments;

/// <summary>
/// The plan section of a sweep file's sticky comment: the sweep's compute (shared steps counted once), its tables
/// (every variant, the totals, what the variants share), then each variant's own plan folded away, as long as the
/// comment stays well inside GitHub's limit.
/// </summary>
public static class SweepPlanComment
{
    /// <summary>Variant plans are added while the section stays below this many characters (GitHub's limit is 65,536).</summary>
    public const int VariantDetailsBudget = 40_000;

    public static string Render(PlanCommentInput input, string at)
    {
        var sweep = input.Sweep ?? throw new ArgumentException("not a sweep", nameof(input));
        var sb = new StringBuilder();
        var n = sweep.Variants.Count;
        sb.Append(CultureInfo.InvariantCulture, $"### Sweep {Md.Code(sweep.Sweep)}: plan of {n} variant{(n == 1 ? "" : "s")}\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"{Md.Code(input.File)}{at} · each variant is its own experiment with its own content hash\n\n");
        var totals = sweep.Totals;
        var selected = totals.SelectedGpu is null ? null : totals.Gpus.FirstOrDefault(g => g.Gpu == totals.SelectedGpu);
        if (selected is not null && selected.Gpu != "cpu")
        {
            var saved = selected.GpuHoursWithoutSharing - selected.GpuHours;
            sb.Append(CultureInfo.InvariantCulture,
                $"**Estimated training compute of the sweep: {PlanComment.Hours(selected.GpuHours)} GPU-hours on {totals.GpuCount}× {selected.Gpu}, ${selected.CostUsd.ToString("#,0", CultureInfo.InvariantCulture)}** at the assumed price");
            sb.Append(saved > 0
                ? string.Create(CultureInfo.InvariantCulture, $" ({PlanComment.Hours(saved)} GPU-hours fewer than running the variants apart: shared training runs once).\n\n")
                : ".\n\n");
        }
        else if (totals.SelectedGpu is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"**Runs on {totals.SelectedGpu}** (resources.gpu); no GPU cost.\n\n");
        }

        if (!string.IsNullOrWhiteSpace(input.PlanMarkdown))
        {
            sb.Append(input.PlanMarkdown.Trim('\n')).Append("\n\n");
        }

        var plans = input.VariantPlanMarkdown ?? [];
        for (var i = 0; i < plans.Count && i < n; i++)
        {
            var details = $"<details><summary>Plan of {Md.Text(sweep.Variants[i].Name)}</summary>\n\n{plans[i].Trim('\n')}\n\n</details>\n\n";
            if (sb.Length + details.Length > VariantDetailsBudget)
            {
                sb.Append(CultureInfo.InvariantCulture, $"The plans of the other {n - i} variant(s) are left out for length: {Md.Code($"wf plan {input.File} --variant NAME")} shows each.\n\n");
                break;
            }

            sb.Append(details);
        }

        sb.Append(CultureInfo.InvariantCulture,
            $"A maintainer starts all {n} runs by commenting `/run {sweep.Sweep}` or adding the label {Md.Code(input.RunLabel)}; this comment then follows them and compares the variants as they finish. Pull requests from forks are never run.\n");
        return sb.ToString();
    }
}
