using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Experiments.Validation;

namespace Workflows.GitOps.Archive;

/// <summary>An archived run that reads a registered corpus (as training data or as held-out data).</summary>
public sealed record CorpusUse(string Experiment, string RunId, string Role);

/// <summary>
/// Which archived runs read a registered corpus. <c>wf corpus upload NAME --replace</c> repoints the name at other
/// files; an archived run resolved the name when it ran, and <c>wf rerun</c> compares the files the name means today with
/// the ones it read, so replacing a corpus an archived run uses makes that run impossible to rerun. The upload is
/// refused instead (register the new files under a new name).
/// </summary>
public static class ArchivedCorpora
{
    public static async Task<IReadOnlyList<CorpusUse>> UsesAsync(IArtifactStore store, string corpus, CancellationToken cancellationToken = default)
    {
        var runs = new RunRecordStore(store);
        var uses = new List<CorpusUse>();
        foreach (var experiment in await new BlobArchiveIndex(store).ListExperimentsAsync(cancellationToken).ConfigureAwait(false))
        {
            foreach (var runId in experiment.Runs)
            {
                if (await runs.GetAsync(runId, cancellationToken).ConfigureAwait(false) is not { } stored)
                {
                    continue;
                }

                string yaml;
                try
                {
                    yaml = await runs.ReadExperimentYamlAsync(runId, cancellationToken).ConfigureAwait(false);
                }
                catch (ArtifactNotFoundException)
                {
                    continue;
                }

                // Policy off: the archived file was accepted when it ran.
                var spec = ExperimentLoader.LoadText($"runs/{runId}/experiment.yaml", yaml, new LoadOptions(PolicyMode.Off)).Spec;
                if (spec is null)
                {
                    continue;
                }

                if (stored.Record.DataPaths is { Count: 0 } && spec.Data.Corpus == corpus)
                {
                    uses.Add(new CorpusUse(experiment.Name, runId, "training data"));
                }

                if (stored.Record.HeldOutPaths is not { Count: > 0 } && spec.Evaluation.DomainLoss.Corpus == corpus)
                {
                    uses.Add(new CorpusUse(experiment.Name, runId, "held-out data"));
                }
            }
        }

        return uses;
    }
}
