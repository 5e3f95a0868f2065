using Workflows.Experiments.Templates;
using System.Globalization;
using System.Text;
using Workflows.Artifacts.Runs;
using Workflows.GitOps.Comments;

namespace Workflows.GitOps.Runs;

/// <summary>One difference between an archived run and its rerun, said precisely: what, which one, expected vs got.</summary>
public sealed record RerunMismatch(string Step, string Item, string Expected, string Got)
{
    public override string ToString() => $"step '{Step}', {Item}: expected {Expected}, got {Got}";
}

/// <summary>The archived run against its rerun: data-prep hashes (must be identical) and headline results (compared).</summary>
public sealed record RerunComparison(
    RunRecord Archived,
    RunRecord Rerun,
    DataPrepFingerprint? ArchivedData,
    DataPrepFingerprint? RerunData,
    NeedleHeadline? ArchivedNeedle,
    NeedleHeadline? RerunNeedle,
    IReadOnlyList<RerunMismatch> Mismatches)
{
    /// <summary>Every shard and input hash matched (and both runs have a data-prep output).</summary>
    public bool DataPrepIdentical => ArchivedData is not null && RerunData is not null && Mismatches.Count == 0;

    public static async Task<RerunComparison> CompareAsync(RunOutputsReader outputs, RunRecord archived, RunRecord rerun, CancellationToken cancellationToken = default)
    {
        var a = await outputs.DataPrepAsync(archived, cancellationToken).ConfigureAwait(false);
        var b = await outputs.DataPrepAsync(rerun, cancellationToken).ConfigureAwait(false);
        var mismatches = new List<RerunMismatch>();
        if (archived.ExperimentHash != rerun.ExperimentHash)
        {
            mismatches.Add(new RerunMismatch("submit", "experiment canonical hash", archived.ExperimentHash, rerun.ExperimentHash));
        }

        if (a is not null && b is not null)
        {
            mismatches.AddRange(Diff(StepContracts.PrepareData.Type, "input", a.Inputs, b.Inputs));
            mismatches.AddRange(Diff(StepContracts.PrepareData.Type, "shard", a.Shards, b.Shards));
        }
        else if (a is not null || b is not null)
        {
            mismatches.Add(new RerunMismatch(StepContracts.PrepareData.Type, "output", a?.OutputPrefix ?? "none", b?.OutputPrefix ?? "none"));
        }

        return new RerunComparison(archived, rerun, a, b,
            await outputs.NeedleAsync(archived, cancellationToken).ConfigureAwait(false),
            await outputs.NeedleAsync(rerun, cancellationToken).ConfigureAwait(false),
            mismatches);
    }

    private static IEnumerable<RerunMismatch> Diff(string step, string kind, IReadOnlyDictionary<string, string> expected, IReadOnlyDictionary<string, string> got)
    {
        foreach (var name in expected.Keys.Union(got.Keys).Order(StringComparer.Ordinal))
        {
            var e = expected.GetValueOrDefault(name);
            var g = got.GetValueOrDefault(name);
            if (e != g)
            {
                yield return new RerunMismatch(step, $"{kind} {name}", e ?? "(absent)", g ?? "(absent)");
            }
        }
    }

    /// <summary>The comparison as the PR comment and <c>wf rerun --wait</c> show it.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"| | archived {Md.Code(Archived.RunId)} | rerun {Md.Code(Rerun.RunId)} |\n|---|---|---|\n");
        sb.Append(CultureInfo.InvariantCulture, $"| experiment hash | {Md.Code(Short(Archived.ExperimentHash))} | {Md.Code(Short(Rerun.ExperimentHash))} |\n");
        sb.Append(CultureInfo.InvariantCulture, $"| code commit | {Md.Code(Short(Archived.CodeCommit))} | {Md.Code(Short(Rerun.CodeCommit))} |\n");
        sb.Append(CultureInfo.InvariantCulture, $"| data-prep shards | {Shards(ArchivedData)} | {Shards(RerunData)} |\n");
        sb.Append(CultureInfo.InvariantCulture, $"| mean needle score | {ArchivedNeedle?.Text("–") ?? "–"} | {RerunNeedle?.Text("–") ?? "–"} |\n");
        sb.Append('\n');
        if (DataPrepIdentical)
        {
            sb.Append(CultureInfo.InvariantCulture, $"Data prep reproduced bit for bit: {ArchivedData!.Shards.Count} shard(s) and {ArchivedData.Inputs.Count} input(s), identical SHA-256.\n");
        }
        else
        {
            sb.Append("**Data prep did not reproduce the archived run:**\n\n");
            foreach (var m in Mismatches)
            {
                sb.Append("- ").Append(Md.Text(m.ToString())).Append('\n');
            }
        }

        return sb.ToString();
    }

    private static string Shards(DataPrepFingerprint? f) => f is null ? "none" : $"{f.Shards.Count} ({Md.Code(Short(f.ContentHash))})";

    private static string Short(string s) => s.Length > 12 ? s[..12] : s;
}
