using System.Text.Json.Nodes;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Evaluation.Comparison;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.GitOps.Runs;

/// <summary>
/// Reads runs from the artifact store as a comparison needs them: the experiment each run recorded (its settings,
/// flattened to dotted paths), and for a succeeded run its raw results, the evaluate-needle step's result files and the
/// evaluate-domain-loss step's loss.json, read verified against their manifests. A sweep id stands for its variants'
/// runs, in the sweep's order.
/// </summary>
public sealed class RunComparisonLoader(IArtifactStore store)
{
    public RunOutputsReader Outputs { get; } = new(store);
    public RunRecordStore Runs { get; } = new(store);
    public SweepRecordStore Sweeps { get; } = new(store);

    /// <summary>What the ids stand for: each run id its run, each sweep id its variants (a variant never submitted as a placeholder).</summary>
    public async Task<IReadOnlyList<ComparedRun>> LoadAsync(IEnumerable<string> ids, CancellationToken cancellationToken = default)
    {
        var result = new List<ComparedRun>();
        foreach (var id in ids)
        {
            if (await Runs.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } run)
            {
                result.Add(await LoadAsync(run.Record, cancellationToken).ConfigureAwait(false));
            }
            else if (await Sweeps.GetAsync(id, cancellationToken).ConfigureAwait(false) is { } sweep)
            {
                result.AddRange(await LoadSweepAsync(sweep.Record, cancellationToken).ConfigureAwait(false));
            }
            else
            {
                throw new KeyNotFoundException($"no run or sweep '{id}' in this store");
            }
        }

        return result;
    }

    public async Task<IReadOnlyList<ComparedRun>> LoadSweepAsync(SweepRecord sweep, CancellationToken cancellationToken = default)
    {
        var result = new List<ComparedRun>();
        foreach (var variant in sweep.Variants)
        {
            var record = await Runs.GetAsync(variant.RunId, cancellationToken).ConfigureAwait(false);
            result.Add(record is null
                ? new ComparedRun(variant.RunId, variant.Name, "not submitted", new Dictionary<string, string>(), NeedleScoreKind.WordRecall, [], null, null,
                    variant.SubmitError ?? "no run record")
                : await LoadAsync(record.Record, cancellationToken).ConfigureAwait(false));
        }

        return result;
    }

    public async Task<ComparedRun> LoadAsync(RunRecord record, CancellationToken cancellationToken = default)
    {
        var yaml = await Runs.ReadExperimentYamlAsync(record.RunId, cancellationToken).ConfigureAwait(false);
        var spec = ExperimentLoader.LoadText($"runs/{record.RunId}/experiment.yaml", yaml, new LoadOptions(PolicyMode.Off)).Require();
        var scorer = NeedleScorers.FromSpec(spec.Evaluation.Needle.Scorer);
        var state = StateName(record.Status);
        var parameters = Flatten(CanonicalForm.ToParameterJson(spec));
        // The experiment the run recorded says whether it evaluated the needle at all: a disabled one shows as such, not as missing.
        var needleDisabled = !spec.Evaluation.Needle.Enabled;
        if (record.Status != RunStatus.Succeeded)
        {
            return new ComparedRun(record.RunId, record.ExperimentName, state, parameters, scorer, [], null, spec.Data.Context, record.Error, needleDisabled);
        }

        var needle = new List<NeedleResult>();
        if (await Outputs.OutputOfAsync(record, StepContracts.EvaluateNeedle.Type, cancellationToken).ConfigureAwait(false) is { } needleOutput)
        {
            foreach (var entry in needleOutput.Entries.Where(e => e.Path.StartsWith("needle/", StringComparison.Ordinal) && e.Path.EndsWith("_results.json", StringComparison.Ordinal))
                         .OrderBy(e => e.Path, StringComparer.Ordinal))
            {
                if (NeedleResultFiles.Parse((await Outputs.ReadTextAsync(needleOutput, entry.Path, cancellationToken).ConfigureAwait(false))!) is { } result)
                {
                    needle.Add(result);
                }
            }
        }

        DomainLossReport? loss = null;
        if (await Outputs.OutputOfAsync(record, StepContracts.EvaluateDomainLoss.Type, cancellationToken).ConfigureAwait(false) is { } lossOutput
            && await Outputs.ReadTextAsync(lossOutput, $"domain-loss/{DomainLossJson.FileName}", cancellationToken).ConfigureAwait(false) is { } lossJson)
        {
            loss = DomainLossJson.Parse(lossJson, $"{lossOutput.Key.Prefix}domain-loss/{DomainLossJson.FileName}");
        }

        return new ComparedRun(record.RunId, record.ExperimentName, state, parameters, scorer, needle, loss, spec.Data.Context, NeedleDisabled: needleDisabled);
    }

    public static string StateName(RunStatus status) => status.ToString().ToLowerInvariant();

    /// <summary>Every leaf of the experiment's parameter JSON as dotted path → value (strings bare, other values as JSON).</summary>
    public static IReadOnlyDictionary<string, string> Flatten(string parameterJson)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        void Walk(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject o when o.Count > 0:
                    foreach (var (key, value) in o)
                    {
                        Walk(value, path.Length == 0 ? key : $"{path}.{key}");
                    }

                    break;
                case JsonValue v when v.TryGetValue<string>(out var s):
                    result[path] = s;
                    break;
                default:
                    result[path] = node?.ToJsonString() ?? "null";
                    break;
            }
        }

        Walk(JsonNode.Parse(parameterJson), "");
        return result;
    }
}
