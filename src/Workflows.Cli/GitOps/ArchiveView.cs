using Workflows.Artifacts.Runs;
using Workflows.Engine;
using Workflows.GitOps.Archive;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.GitOps;

/// <summary>A run with its headline result, as <c>wf list</c> / <c>wf show</c> print it.</summary>
public sealed record RunHeadline(RunRecord Record, NeedleHeadline? Needle);

/// <summary>The archive joined with the run records: experiment → runs with status and mean needle score.</summary>
public static class ArchiveView
{
    public static async Task<IReadOnlyList<(ArchivedExperiment Experiment, IReadOnlyList<RunHeadline> Runs)>> LoadAsync(EngineClient client, CancellationToken ct)
    {
        var index = await new BlobArchiveIndex(client.Store).ListExperimentsAsync(ct);
        var outputs = new RunOutputsReader(client.Store);
        var result = new List<(ArchivedExperiment, IReadOnlyList<RunHeadline>)>();
        foreach (var e in index)
        {
            var runs = new List<RunHeadline>();
            foreach (var id in e.Runs)
            {
                if ((await client.Runs.GetAsync(id, ct))?.Record is { } r)
                {
                    runs.Add(new RunHeadline(r, await outputs.NeedleAsync(r, ct)));
                }
            }

            result.Add((e, runs));
        }

        return result;
    }
}
