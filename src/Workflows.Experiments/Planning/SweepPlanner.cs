using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;

namespace Workflows.Experiments.Planning;

/// <summary>How plans write numbers of tokens: 5B, 64K, 1.5M.</summary>
public static class PlanFormat
{
    public static string Tokens(long n) => n switch
    {
        >= 1_000_000_000 => (n / 1e9).ToString("0.###", CultureInfo.InvariantCulture) + "B",
        >= 1_000_000 => (n / 1e6).ToString("0.###", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (n / 1e3).ToString("0.###", CultureInfo.InvariantCulture) + "K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };
}

/// <summary>One variant of a sweep with its own plan.</summary>
public sealed record SweepVariantPlan(int Index, string Name, string ContentHash, IReadOnlyDictionary<string, string> Values, Plan Plan);

/// <summary>GPU-hours and cost of the whole sweep on one GPU type: as it will run (shared steps once), and if nothing were shared.</summary>
public sealed record SweepGpuTotal(string Gpu, double GpuHours, double CostUsd, double GpuHoursWithoutSharing, double CostUsdWithoutSharing);

/// <summary>What the sweep adds up to.</summary>
public sealed record SweepTotals(
    int Variants,
    long TokenBudget,
    long TrainedTokens,
    double TrainingFlops,
    int NeedleCells,
    string? SelectedGpu,
    int GpuCount,
    IReadOnlyList<SweepGpuTotal> Gpus);

/// <summary>
/// How often one step of the workflow runs over the sweep: variants that give it the same inputs share one execution
/// through the content-addressed cache. <see cref="Groups"/> lists the variants of each execution that serves more than one.
/// </summary>
public sealed record StepSharing(string Step, string Type, int Variants, int Executions, IReadOnlyList<IReadOnlyList<string>> Groups, string? Saves);

/// <summary>A sweep file's plan: every variant's plan, the totals, and which steps the variants share.</summary>
public sealed record SweepPlan(
    string Sweep,
    string File,
    IReadOnlyList<SweepVariantPlan> Variants,
    SweepTotals Totals,
    IReadOnlyList<StepSharing>? Steps,
    IReadOnlyList<string> Notes);

/// <summary>
/// Plans a sweep: each variant with <see cref="Planner"/>, the totals, and which step executions the variants share.
/// Sharing is predicted the way the engine keys its cache, without reading inputs. A step's contract
/// (<see cref="StepContracts"/>) makes its bound parameters (the template's <c>with:</c> for this variant, as canonical
/// JSON) everything it reads of the experiment, so its planned key is its type, those parameters, the planned keys of
/// the steps it needs (standing in for their outputs' content hashes) and, for prepare-data, the shard count; the
/// prepare-data step's measure pass (one length index per input file, keyed by the file and the tokenizer) is a step
/// of its own here. Equal planned keys mean equal cache keys at run time (the same files read from the same sweep
/// file), so those executions happen once. The prediction can only under-count: two different keys whose outputs
/// happen to have equal content make the steps after them share too.
/// </summary>
public static class SweepPlanner
{
    public const string MeasureStep = "prepare-data (measure pass)";

    /// <summary>
    /// The workflow template the variants run, from <paramref name="workflowsDirectory"/>; null when there is none, it
    /// is invalid, or the variants use different workflows (then sharing is not computed).
    /// </summary>
    public static WorkflowTemplate? TemplateFor(SweepLoadResult sweep, string? workflowsDirectory)
    {
        var names = sweep.Variants.Select(v => v.Spec.Workflow).Distinct().ToList();
        if (workflowsDirectory is null || names.Count != 1)
        {
            return null;
        }

        var file = Path.Combine(workflowsDirectory, names[0] + ".yaml");
        return File.Exists(file) ? TemplateLoader.LoadFile(file).Template : null;
    }

    public static SweepPlan Create(SweepLoadResult sweep, WorkflowTemplate? template, PlanOptions? options = null) =>
        Create(sweep, template, _ => options);

    /// <param name="optionsFor">Each variant's plan options: variants may read different corpora, so their statistics differ.</param>
    public static SweepPlan Create(SweepLoadResult sweep, WorkflowTemplate? template, Func<SweepVariant, PlanOptions?> optionsFor)
    {
        ArgumentNullException.ThrowIfNull(optionsFor);
        var variants = sweep.Require().Select(v => new SweepVariantPlan(v.Index, v.Name, v.ContentHash, v.ValueLabels(), Planner.Create(v.Spec, optionsFor(v)))).ToList();
        var notes = new List<string>();
        IReadOnlyList<StepSharing>? steps = null;
        Dictionary<string, string>? trainKeys = null;
        if (template is null)
        {
            notes.Add("no single valid workflow template for the variants: which steps they share was not computed");
        }
        else
        {
            var keys = sweep.Variants.ToDictionary(v => v.Name, v => PlannedKeys(TemplateLoader.Bind(template, v.Spec), v.Spec), StringComparer.Ordinal);
            steps = Sharing(template, sweep, variants, keys);
            var train = template.Steps.FirstOrDefault(s => s.Type == StepContracts.Train.Type);
            if (train is not null)
            {
                trainKeys = keys.ToDictionary(k => k.Key, k => k.Value[train.Id], StringComparer.Ordinal);
            }
        }

        return new SweepPlan(sweep.Name ?? Path.GetFileNameWithoutExtension(sweep.File), sweep.File, variants, Totals(variants, trainKeys), steps, notes);
    }

    private static SweepTotals Totals(IReadOnlyList<SweepVariantPlan> variants, IReadOnlyDictionary<string, string>? trainKeys)
    {
        var gpus = variants[0].Plan.Compute.Estimates.Select(e => e.Gpu).ToList();
        var totals = gpus.Select(gpu =>
        {
            var all = variants.Select(v => (v.Name, Estimate: v.Plan.Compute.Estimates.First(e => e.Gpu == gpu))).ToList();
            // A training two variants share runs once: count each planned train key once.
            var once = trainKeys is null ? all : all.GroupBy(a => trainKeys[a.Name]).Select(g => g.First()).ToList();
            return new SweepGpuTotal(gpu, once.Sum(a => a.Estimate.GpuHours), once.Sum(a => a.Estimate.CostUsd),
                all.Sum(a => a.Estimate.GpuHours), all.Sum(a => a.Estimate.CostUsd));
        }).ToList();
        var selected = variants.Select(v => v.Plan.Compute.SelectedGpu).Distinct().ToList();
        var counts = variants.Select(v => v.Plan.Compute.GpuCount).Distinct().ToList();
        return new SweepTotals(
            variants.Count,
            variants.Sum(v => v.Plan.Data.TokenBudget),
            variants.Sum(v => v.Plan.Training.TrainedTokens),
            variants.Sum(v => v.Plan.Compute.TrainingFlops),
            variants.Sum(v => v.Plan.Evaluation.NeedleCells),
            selected.Count == 1 ? selected[0] : null,
            counts.Count == 1 ? counts[0] : 0,
            totals);
    }

    private static List<StepSharing> Sharing(WorkflowTemplate template, SweepLoadResult sweep, IReadOnlyList<SweepVariantPlan> plans,
        IReadOnlyDictionary<string, Dictionary<string, string>> keys)
    {
        var result = new List<StepSharing>();
        var rows = template.Steps.SelectMany(s => s.Type == StepContracts.PrepareData.Type ? new[] { (Id: MeasureStep, s.Type), (s.Id, s.Type) } : [(s.Id, s.Type)]);
        foreach (var (id, type) in rows)
        {
            var groups = sweep.Variants.GroupBy(v => keys[v.Name][id]).Select(g => (IReadOnlyList<string>)g.Select(v => v.Name).ToList()).ToList();
            var shared = groups.Where(g => g.Count > 1).ToList();
            var saved = sweep.Variants.Count - groups.Count;
            result.Add(new StepSharing(id, type, sweep.Variants.Count, groups.Count, shared, saved == 0 ? null : Saves(id, type, saved, shared, sweep, plans)));
        }

        return result;
    }

    private static string Saves(string id, string type, int saved, List<IReadOnlyList<string>> shared, SweepLoadResult sweep, IReadOnlyList<SweepVariantPlan> plans)
    {
        var first = plans.First(p => p.Name == shared[0][0]).Plan;
        var times = saved == 1 ? "one" : saved.ToString(CultureInfo.InvariantCulture);
        var spec = sweep.Variants.First(v => v.Name == shared[0][0]).Spec;
        var plural = saved == 1 ? "" : "s";
        if (id == MeasureStep)
        {
            return $"{times} measure pass{(saved == 1 ? "" : "es")} (reading and tokenizing {(spec.Data.Paths is { Count: > 0 } p ? $"{p.Count} input path(s)" : $"corpus '{spec.Data.Corpus}'")})";
        }

        if (type == StepContracts.PrepareData.Type)
        {
            return $"{times} data prep{plural} (selecting and packing {PlanFormat.Tokens(first.Data.TokenBudget)} tokens each)";
        }

        if (type == StepContracts.Train.Type)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{times} training run{plural} ({SavedHours(shared, plans):#,0.##} GPU-hours on {first.Compute.SelectedGpu})");
        }

        if (type == StepContracts.EvaluateNeedle.Type)
        {
            return $"{times} needle grid{plural} ({first.Evaluation.NeedleCells:N0} cells each)";
        }

        return type == StepContracts.EvaluateDomainLoss.Type ? $"{times} domain-loss pass{(saved == 1 ? "" : "es")}" : $"{times} execution{plural}";
    }

    private static double SavedHours(List<IReadOnlyList<string>> shared, IReadOnlyList<SweepVariantPlan> plans) =>
        shared.Sum(g => g.Skip(1).Sum(name =>
        {
            var compute = plans.First(p => p.Name == name).Plan.Compute;
            return compute.Estimates.FirstOrDefault(e => e.Gpu == compute.SelectedGpu)?.GpuHours ?? 0;
        }));

    /// <summary>
    /// Each step's planned cache key for one variant (see the class remarks), plus the measure pass's under
    /// <see cref="MeasureStep"/>: the inputs as the sweep file names them and the tokenizer.
    /// </summary>
    public static Dictionary<string, string> PlannedKeys(BoundWorkflow workflow, ExperimentSpec spec)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        var byId = workflow.Steps.ToDictionary(s => s.Id, StringComparer.Ordinal);
        string KeyOf(BoundStep step)
        {
            if (keys.TryGetValue(step.Id, out var known))
            {
                return known;
            }

            // The parameters are the step's canonical JSON (keys sorted, defaults written), as the engine hashes them;
            // only prepare-data's key holds its fan-out (the shard count), as the engine's does.
            var needs = new JsonArray([.. step.Needs.Order(StringComparer.Ordinal).Select(n => (JsonNode?)JsonValue.Create(KeyOf(byId[n])))]);
            var planned = new JsonObject { ["type"] = step.Type, ["parameters"] = step.Parameters, ["needs"] = needs };
            if (step.Type == StepContracts.PrepareData.Type)
            {
                planned["shards"] = step.FanOutCount;
            }

            var key = Sha(planned);
            keys[step.Id] = key;
            return key;
        }

        foreach (var step in workflow.Steps)
        {
            KeyOf(step);
        }

        var inputs = spec.Data.Paths is { Count: > 0 } paths
            ? new JsonArray([.. paths.Select(p => (JsonNode?)JsonValue.Create(p))])
            : (JsonNode)JsonValue.Create("corpus:" + spec.Data.Corpus);
        keys[MeasureStep] = Sha(new JsonObject { ["measure"] = inputs, ["tokenizer"] = spec.Data.Tokenizer });
        return keys;
    }

    private static string Sha(JsonObject value) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value.ToJsonString())));
}
