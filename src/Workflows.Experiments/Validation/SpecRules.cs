using System.Globalization;
using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Validation;

/// <summary>
/// Rules that involve more than one field, and the repository policy for files under <c>experiments/</c>:
/// token budget 0.5B–10B and context 64K or 80K (the paper's regime), unless the file says <c>profile: smoke</c> or
/// <c>profile: dev</c>.
/// </summary>
public static class SpecRules
{
    public const long PolicyMinTokens = 500_000_000;
    public const long PolicyMaxTokens = 10_000_000_000;
    public static readonly IReadOnlyList<long> PolicyContexts = [65_536, 81_920];

    public static readonly IReadOnlyList<string> KnownTokenizers = ["llama-2", "gpt2"];

    public static IEnumerable<Diagnostic> Check(
        ExperimentSpec spec,
        string file,
        IReadOnlyDictionary<string, SourceLocation> at,
        bool enforcePolicy,
        string? workflowsDirectory)
    {
        var results = new List<Diagnostic>();
        void Add(string path, DiagnosticCode code, string message, string? hint)
        {
            // Point at the key itself, or at the nearest enclosing key that was written.
            var probe = path;
            SourceLocation location;
            while (!at.TryGetValue(probe, out location))
            {
                var dot = probe.LastIndexOf('.');
                if (dot < 0)
                {
                    location = at.TryGetValue("", out var root) ? root : new SourceLocation(file, 1, 1);
                    break;
                }

                probe = probe[..dot];
            }

            results.Add(new Diagnostic(location, code, path, message, hint));
        }

        bool Written(string path) => at.ContainsKey(path);

        var data = spec.Data;
        var up = data.Upsampling;

        if (data.Mix.Weights is { } weights)
        {
            var sum = weights.Values.Sum();
            if (Math.Abs(sum - 1.0) > MixSpec.SumTolerance)
            {
                Add("data.mix", DiagnosticCode.WeightsDoNotSumToOne,
                    $"mix weights sum to {sum.ToString("0.#########", CultureInfo.InvariantCulture)}, not 1 (tolerance 1e-6)",
                    Math.Abs(sum) > 0 ? $"divide each weight by {sum.ToString("0.######", CultureInfo.InvariantCulture)}, or use 'mix: natural'" : "give at least one source a positive weight");
            }

            if (up.Mode == UpsamplingMode.Global)
            {
                Add("data.mix", DiagnosticCode.InvalidValue, "upsampling mode 'global' ignores sources, so explicit mix weights would not be honoured",
                    "use 'mix: natural' with mode global, or mode per-source to keep these weights");
            }
        }

        if (up.Mode == UpsamplingMode.Upsample)
        {
            if (up.Sources is null || up.Sources.Count == 0)
            {
                Add("data.upsampling.sources", DiagnosticCode.MissingKey, "mode 'upsample' needs the sources to boost",
                    "e.g. sources: [Book] or sources: [Github, ArXiv, Book]");
            }
            else if (up.Sources.Distinct().Count() != up.Sources.Count)
            {
                Add("data.upsampling.sources", DiagnosticCode.InvalidValue, "a source is listed twice", "list each source once");
            }

            if ((up.BoostWeight is null) == (up.TargetShare is null))
            {
                Add("data.upsampling", DiagnosticCode.InvalidValue, "mode 'upsample' needs exactly one of boost_weight and target_share",
                    "boost_weight: 0.6 reproduces the released code; target_share: 0.55 gives the boosted sources 55% of tokens");
            }

            if (up.TargetShare is >= 1.0 or <= 0.0)
            {
                Add("data.upsampling.target_share", DiagnosticCode.OutOfRange, "target_share must be strictly between 0 and 1", null);
            }

            if (up.BoostWeight is <= 0.0)
            {
                Add("data.upsampling.boost_weight", DiagnosticCode.OutOfRange, "boost_weight must be positive", null);
            }
        }
        else
        {
            foreach (var key in new[] { "sources", "boost_weight", "target_share" })
            {
                if (Written($"data.upsampling.{key}"))
                {
                    Add($"data.upsampling.{key}", DiagnosticCode.InvalidValue, $"'{key}' only applies to mode 'upsample' (mode is '{SpecModel.EnumName(typeof(UpsamplingMode), up.Mode)}')",
                        "remove it, or set mode: upsample");
                }
            }
        }

        if (up.Mode is UpsamplingMode.None or UpsamplingMode.Cut)
        {
            foreach (var key in new[] { "short_keep_ratio", "target_long_fraction" })
            {
                if (Written($"data.upsampling.{key}"))
                {
                    Add($"data.upsampling.{key}", DiagnosticCode.InvalidValue, $"'{key}' has no effect in mode '{SpecModel.EnumName(typeof(UpsamplingMode), up.Mode)}', which keeps every document",
                        "remove it, or choose mode global, per-source or upsample");
                }
            }
        }

        if (Written("data.upsampling.cut_length") && up.Mode != UpsamplingMode.Cut)
        {
            Add("data.upsampling.cut_length", DiagnosticCode.InvalidValue, "'cut_length' only applies to mode 'cut'", "remove it, or set mode: cut");
        }

        if (up.Mode == UpsamplingMode.Cut && up.CutLength > data.Context)
        {
            Add("data.upsampling.cut_length", DiagnosticCode.OutOfRange, $"cut_length {up.CutLength} is longer than the context {data.Context}", "cut_length is at most the context");
        }

        if (Written("data.upsampling.short_keep_ratio") && up.TargetLongFraction is not null)
        {
            Add("data.upsampling.target_long_fraction", DiagnosticCode.InvalidValue, "give short_keep_ratio or target_long_fraction, not both",
                "target_long_fraction solves the keep ratio per source; remove short_keep_ratio");
        }

        if (!KnownTokenizers.Contains(data.Tokenizer) && !data.Tokenizer.EndsWith(".model", StringComparison.Ordinal))
        {
            var suggestion = Suggest.Closest(data.Tokenizer, KnownTokenizers);
            Add("data.tokenizer", DiagnosticCode.InvalidValue, $"unknown tokenizer {Untrusted.Quote(data.Tokenizer)}",
                (suggestion is null ? "" : $"did you mean '{suggestion}'? ") + "use llama-2, gpt2 or a path to a SentencePiece tokenizer.model");
        }

        // Any corpus id (the spec's pattern) is allowed without data.paths: corpora are registered in the engine's blob
        // store ('wf corpus upload NAME FILES...'), which validation cannot see; the engine's prepare-data step fails a
        // run whose corpus is not registered, naming that command.

        CheckModel(spec, Add);

        var training = spec.Training;
        if (training.BatchTokens < data.Context)
        {
            Add("training.batch_tokens", DiagnosticCode.OutOfRange,
                $"batch_tokens {training.BatchTokens:N0} is less than one sequence of {data.Context:N0} tokens",
                $"use at least {SizeLiteral.Format(data.Context, SizeBase.Binary)} tokens per batch");
        }
        else
        {
            var sequencesPerStep = Workflows.Experiments.Planning.Plan.SequencesPerStep(training.BatchTokens, data.Context);
            if (training.MicroBatch > sequencesPerStep)
            {
                Add("training.micro_batch", DiagnosticCode.OutOfRange,
                    $"micro_batch {training.MicroBatch} is larger than the {sequencesPerStep} sequences of one optimiser step",
                    $"use micro_batch <= {sequencesPerStep}");
            }
        }

        // Memory: a run that cannot fit on its GPUs under any placement is refused here, not after hours in a queue;
        // so is one that fits only with ZeRO stage 3 while turning off the activation checkpointing stage 3 needs.
        if (Workflows.Experiments.Spec.ModelCatalog.Resolve(spec.Model) is { } memoryShape
            && Workflows.Experiments.Planning.MemoryPlanner.Choose(spec, memoryShape) is { Chosen: null } memory)
        {
            if (memory.Candidates.Any(c => c.Fits))
            {
                Add("training.activation_checkpointing", DiagnosticCode.OutOfRange, memory.Note, "set training.activation_checkpointing: true, or use more GPUs; 'wf plan' shows the memory plan");
            }
            else
            {
                var best = memory.Candidates.MinBy(c => c.Total)!;
                string memoryKey = Written("training.optimizer.offload") && memory.Candidates.All(c => c.Placement == "gpu") ? "training.optimizer.offload"
                    : training.MicroBatch > 1 ? "training.micro_batch" : "data.context";
                Add(memoryKey, DiagnosticCode.OutOfRange,
                    $"the run needs {Workflows.Experiments.Planning.MemoryPlanner.Gib(best.Total)} per GPU at best (optimizer on {best.Placement}), the {memory.Gpu} allows {Workflows.Experiments.Planning.MemoryPlanner.Gib(best.Budget)}",
                    "lower micro_batch or context, set training.optimizer.offload to auto or cpu, or use more GPUs; 'wf plan' shows the memory plan");
            }
        }

        var needle = spec.Evaluation.Needle;
        if (needle.Lengths.From > needle.Lengths.To)
        {
            Add("evaluation.needle.lengths", DiagnosticCode.OutOfRange, $"needle lengths go from {needle.Lengths.From} to {needle.Lengths.To}: 'from' must not exceed 'to'", null);
        }

        if (needle.Lengths.Count == 1 && needle.Lengths.From != needle.Lengths.To)
        {
            Add("evaluation.needle.lengths.count", DiagnosticCode.InvalidValue, "count 1 needs from = to", "set count >= 2, or from = to");
        }

        var buckets = spec.Evaluation.DomainLoss.Buckets;
        for (var i = 1; i < buckets.Count; i++)
        {
            if (buckets[i].From < buckets[i - 1].To)
            {
                Add($"evaluation.domain_loss.buckets[{i}]", DiagnosticCode.InvalidValue, $"bucket {buckets[i]} overlaps {buckets[i - 1]}", "list buckets in increasing, non-overlapping order");
            }
        }

        // Held-out files that are also training files would measure memorisation, not validation loss.
        var heldOut = spec.Evaluation.DomainLoss.Paths ?? [];
        var trainingPaths = new HashSet<string>((data.Paths ?? []).Select(NormalisePath), StringComparer.Ordinal);
        for (var i = 0; i < heldOut.Count; i++)
        {
            if (trainingPaths.Contains(NormalisePath(heldOut[i])))
            {
                Add($"evaluation.domain_loss.paths[{i}]", DiagnosticCode.InvalidValue, $"{Untrusted.Quote(heldOut[i])} is also in data.paths: held-out documents must not be training documents",
                    "point domain_loss.paths at a validation split");
            }
        }

        if (spec.Evaluation.DomainLoss.Corpus is { } heldOutCorpus)
        {
            if (heldOut.Count > 0)
            {
                Add("evaluation.domain_loss.corpus", DiagnosticCode.InvalidValue, "domain_loss names both paths and a corpus: give one of them", null);
            }
            else if ((data.Paths is null || data.Paths.Count == 0) && heldOutCorpus == data.Corpus)
            {
                Add("evaluation.domain_loss.corpus", DiagnosticCode.InvalidValue, $"{Untrusted.Quote(heldOutCorpus)} is also the training corpus (data.corpus): held-out documents must not be training documents",
                    "register the validation split as its own corpus");
            }
        }

        if (workflowsDirectory is not null && Directory.Exists(workflowsDirectory)
            && !File.Exists(Path.Combine(workflowsDirectory, spec.Workflow + ".yaml")))
        {
            var known = Directory.GetFiles(workflowsDirectory, "*.yaml").Select(Path.GetFileNameWithoutExtension).OfType<string>().ToList();
            var suggestion = Suggest.Closest(spec.Workflow, known);
            Add("workflow", DiagnosticCode.InvalidValue, $"no workflow template '{spec.Workflow}' in {Path.GetRelativePath(Environment.CurrentDirectory, workflowsDirectory)}",
                (suggestion is null ? "" : $"did you mean '{suggestion}'? ") + $"templates: {string.Join(", ", known)}");
        }

        if (enforcePolicy && spec.Profile == Profile.Full)
        {
            if (data.TokenBudget is < PolicyMinTokens or > PolicyMaxTokens)
            {
                Add("data.token_budget", DiagnosticCode.PolicyViolation,
                    $"token_budget {SizeLiteral.Format(data.TokenBudget, SizeBase.Decimal)} is outside the policy range 0.5B-10B for experiments/",
                    "use 500M..10B, or mark a small run with 'profile: smoke' (or dev)");
            }

            if (!PolicyContexts.Contains(data.Context))
            {
                Add("data.context", DiagnosticCode.PolicyViolation,
                    $"context {SizeLiteral.Format(data.Context, SizeBase.Binary)} ({data.Context:N0}) is not allowed for experiments/: use 64K (65,536) or 80K (81,920)",
                    "or mark a small run with 'profile: smoke' (or dev)");
            }

            var stem = Path.GetFileNameWithoutExtension(file);
            if (stem != spec.Name)
            {
                Add("name", DiagnosticCode.PolicyViolation, $"name '{spec.Name}' differs from the file name {Untrusted.Quote(stem)}",
                    $"rename the file to {spec.Name}.yaml or set name: {stem}");
            }
        }

        return results;
    }

    private static void CheckModel(ExperimentSpec spec, Action<string, DiagnosticCode, string, string?> add)
    {
        var model = spec.Model;
        if (!ModelCatalog.IsPath(model.Base) && !ModelCatalog.Known.ContainsKey(model.Base))
        {
            var suggestion = Suggest.Closest(model.Base, ModelCatalog.Known.Keys);
            add("model.base", DiagnosticCode.InvalidValue, $"unknown base model {Untrusted.Quote(model.Base)}",
                (suggestion is null ? "" : $"did you mean '{suggestion}'? ") + $"known: {string.Join(", ", ModelCatalog.Known.Keys)}; or a path to a HuggingFace model folder");
        }

        var shape = ModelCatalog.Resolve(model);
        if (shape is not null)
        {
            if (shape.HiddenSize % shape.Heads != 0)
            {
                add("model.architecture", DiagnosticCode.InvalidValue, $"hidden_size {shape.HiddenSize} is not divisible by heads {shape.Heads}", null);
            }

            if (shape.Heads % shape.KvHeads != 0)
            {
                add("model.architecture.kv_heads", DiagnosticCode.InvalidValue, $"kv_heads {shape.KvHeads} does not divide heads {shape.Heads}", "grouped-query attention shares each key/value head among heads / kv_heads query heads");
            }
            else if (shape.HeadDim % 2 != 0)
            {
                add("model.architecture", DiagnosticCode.InvalidValue, $"head dimension {shape.HeadDim} is odd; RoPE rotates pairs of dimensions", null);
            }
        }

        if (model.Rope.Scaling is { } scaling && scaling.OriginalContext >= spec.Data.Context && scaling.Type != RopeScalingType.Dynamic)
        {
            add("model.rope.scaling.original_context", DiagnosticCode.InvalidValue,
                $"original_context {scaling.OriginalContext} is not below the training context {spec.Data.Context}: there is nothing to extend", null);
        }
    }

    /// <summary>A path as written, compared the way the loader resolves it (same folder, '/' separators, no "./").</summary>
    private static string NormalisePath(string path) =>
        Path.GetFullPath(path.Replace('\\', '/'), "/experiment-folder/").TrimEnd('/');
}
