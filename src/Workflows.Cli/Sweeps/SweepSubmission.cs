using Workflows.Artifacts.Runs;
using Workflows.Engine;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Comments;

namespace Workflows.Cli.Sweeps;

/// <summary>A sweep file ready to submit: every variant prepared as an ordinary run request.</summary>
/// <param name="DisplayFile">How records and comments name the file (experiments/NAME.yaml, never a machine path).</param>
public sealed record PreparedSweep(SweepLoadResult Sweep, string DisplayFile, string MatrixYaml, IReadOnlyList<(SweepVariant Variant, SubmitRequest Request)> Variants)
{
    public string Name => Sweep.Name!;

    /// <summary>The variant the experiments' <c>gitops.baseline</c> names, when it is one of them.</summary>
    public string? Baseline => Sweep.Variants.Select(v => v.Spec.GitOps.Baseline).FirstOrDefault(b => b is not null && Sweep.Variant(b) is not null);
}

/// <summary>
/// Submits a sweep: a sweep record (<c>sweeps/&lt;id&gt;/</c>) naming every variant and its run id, then each variant as
/// an ordinary run through the engine client, with the sweep id recorded in its run. Run ids are
/// <c>&lt;sweep&gt;-&lt;NN&gt;</c>, so they sort in the sweep's order and a GPU agent, which takes open jobs in id
/// order, serves the variants in that order. A variant the engine refuses is recorded with its error and the others
/// are submitted regardless; each run then succeeds or fails on its own.
/// </summary>
public static class SweepSubmission
{
    public static PreparedSweep Prepare(string file, string workflowsDirectory, string codeCommit)
    {
        var sweep = SweepLoader.LoadFile(file, new LoadOptions(WorkflowsDirectory: workflowsDirectory));
        var variants = sweep.Require();
        var folder = Path.GetDirectoryName(Path.GetFullPath(file))!;
        return new PreparedSweep(sweep, DisplayPath(file), File.ReadAllText(file),
            [.. variants.Select(v => (v, EngineClient.Prepare(v.Spec, v.Yaml, folder, workflowsDirectory, codeCommit)))]);
    }

    /// <summary>A new sweep id: <c>sweep-</c> and a run id (UTC time, so sweeps sort chronologically, plus 6 random hex digits).</summary>
    public static string NewSweepId() => "sweep-" + RunRecord.NewRunId();

    public static string RunIdOf(string sweepId, int index) => $"{sweepId}-{index:00}";

    /// <summary>The file as records name it: from its experiments/ folder when it has one, else its file name.</summary>
    public static string DisplayPath(string file)
    {
        var full = Path.GetFullPath(file);
        var directory = Path.GetDirectoryName(full);
        while (!string.IsNullOrEmpty(directory))
        {
            if (Path.GetFileName(directory) == "experiments")
            {
                return Path.GetRelativePath(Path.GetDirectoryName(directory)!, full).Replace('\\', '/');
            }

            directory = Path.GetDirectoryName(directory);
        }

        return Path.GetFileName(full);
    }

    public static async Task<SweepRecord> SubmitAsync(EngineClient client, PreparedSweep sweep, string sweepId, RunOrigin? origin = null, TextWriter? log = null)
    {
        var record = new SweepRecord
        {
            SweepId = sweepId,
            Name = sweep.Name,
            File = sweep.DisplayFile,
            CodeCommit = sweep.Variants[0].Request.CodeCommit,
            SubmittedAt = DateTimeOffset.UtcNow,
            Origin = origin,
            Baseline = sweep.Baseline,
            Variants = [.. sweep.Variants.Select(v => new SweepVariantRecord
            {
                Index = v.Variant.Index,
                Name = v.Variant.Name,
                ExperimentHash = v.Variant.ContentHash,
                RunId = RunIdOf(sweepId, v.Variant.Index),
                Values = v.Variant.ValueLabels(),
            })],
        };
        var sweeps = new SweepRecordStore(client.Store);
        record = (await sweeps.CreateAsync(record, sweep.MatrixYaml).ConfigureAwait(false)).Record;
        foreach (var (variant, request) in sweep.Variants)
        {
            var runId = RunIdOf(sweepId, variant.Index);
            try
            {
                // The run records its sweep and its point in it (axis path -> label), so a run read on its own says both.
                await client.SubmitAsync(request, runId, new SubmitOptions { Origin = origin, SweepId = sweepId, Labels = variant.ValueLabels() }).ConfigureAwait(false);
                log?.WriteLine($"  {variant.Index,2}. {variant.Name}: run {runId} ({variant.Describe()})");
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException)
            {
                // One variant the engine refuses (a hostile name, a run id taken by another experiment) must not stop the rest.
                log?.WriteLine($"  {variant.Index,2}. {variant.Name}: not submitted: {e.Message}");
                record = (await sweeps.UpdateAsync(sweepId, r => r with
                {
                    Variants = [.. r.Variants.Select(v => v.Index == variant.Index ? v with { SubmitError = e.Message } : v)],
                }).ConfigureAwait(false)).Record;
            }
        }

        return record;
    }

    /// <summary>The sweep as just submitted, for its PR comment: every variant submitted (or refused).</summary>
    public static SweepReport SubmittedReport(SweepRecord sweep) => new(
        sweep.Name,
        sweep.SweepId,
        [.. sweep.Variants.Select(v => new SweepVariantState(v.Index, v.Name, v.RunId, v.SubmitError is null ? RunState.Submitted : null,
            v.DescribeValues(), Error: v.SubmitError))],
        sweep.Origin?.HeadSha,
        sweep.Origin?.RequestedBy);
}
