using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Corpora;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Packing;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Tokenization;
using Workflows.Engine.Corpora;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Steps;

/// <summary>
/// prepare-data as activities over <see cref="DataPrepPipeline"/>: resolve inputs (SHA-256 of each local file of
/// <c>data.paths</c>, or, without paths, the registered corpus <c>data.corpus</c>'s manifest) →
/// cache check → measure per input file (fan-out; each file's index is itself content-addressed, so experiments over
/// the same files share it) → plan → write shard j (fan-out over the plan's shards) → publish (statistics, charts,
/// the data-prep manifest, then the content-addressed manifest, last).
/// </summary>
/// <remarks>
/// Output layout under <c>cas/prepare-data/&lt;key&gt;/</c>: <c>data/shard-NNNNN.parquet</c>, <c>data/stats.json</c>,
/// <c>data/length-histogram.png</c>, <c>data/source-mix.png</c>, <c>data/manifest.json</c> (the data-prep manifest, so
/// downloading <c>data/</c> gives exactly the folder <c>wf prep</c> writes and training reads).
/// Key = (prepare-data, version, {options, tokenizer, shard count, input keys}, {input:KEY → SHA-256 of the file}).
/// A corpus file's key and SHA-256 come from its manifest, so a corpus run and a local-paths run of the same files
/// (same keys, same bytes) have the same keys and share every cached output.
/// The template's fan-out count is the number of output shards wanted: sequences per shard = ceil(sequences / count).
/// </remarks>
public static class PrepareDataStep
{
    public static readonly string Type = StepContracts.PrepareData.Type;
    public const string Version = StepOutputs.Version;
    public const string MeasureActivity = "dataprep-measure";
    public const string MeasureVersion = "1";

    public const string Resolve = "prepare-data.resolve";
    public const string Measure = "prepare-data.measure";
    public const string PlanActivity = "prepare-data.plan";
    public const string Write = "prepare-data.write";
    public const string Publish = "prepare-data.publish";

    /// <summary>Folder inside the output that holds what <c>wf prep --out</c> would hold.</summary>
    public const string DataFolder = "data";

    public static StepHandler Create(EngineServices services)
    {
        var work = new Work(services);
        return new StepHandler(StepContracts.PrepareData, new Runner(),
        [
            new ActivityRegistration(Resolve, new Activity<ResolveInput, PrepInputs>(work.ResolveAsync)),
            new ActivityRegistration(Measure, new Activity<MeasureInput, MeasureResult>(work.MeasureAsync)),
            new ActivityRegistration(PlanActivity, new Activity<PrepContext, PlanInfo>(work.PlanAsync)),
            new ActivityRegistration(Write, new Activity<WriteInput, ShardPart>(work.WriteAsync)),
            new ActivityRegistration(Publish, new Activity<PublishPrepInput, StepOutput>(work.PublishAsync)),
        ]);
    }

    /// <param name="Parameters">The step's <see cref="PrepareDataParameters"/> as canonical JSON: all the activities read of the experiment.</param>
    public sealed record ResolveInput(string RunId, string Step, string Parameters, string ExperimentDirectory, int ShardCount);

    /// <summary>One input. From a registered corpus (<paramref name="FromCorpus"/>), <paramref name="Path"/> is its blob and the bytes are fetched into the cache.</summary>
    public sealed record InputRef(string Key, string Path, string Sha256, string MeasureKeyHash, long Bytes = 0, bool FromCorpus = false);

    public sealed record PrepInputs(string KeyHash, IReadOnlyList<InputRef> Files);

    public sealed record MeasureInput(string RunId, string Parameters, InputRef File);

    public sealed record MeasureResult(string FileKey, string MeasureKeyHash, string ContentHash, bool Cached);

    public sealed record PrepContext(string RunId, string Step, string Parameters, string KeyHash, int ShardCount, IReadOnlyList<MeasureResult> Measures);

    public sealed record PlanInfo(string PlanId, int ShardCount, int SequencesPerShard, long Sequences);

    public sealed record WriteInput(PrepContext Context, int SequencesPerShard, int Shard);

    public sealed record ShardPart(int Shard, string File, string Blob, long Bytes, string Sha256, long Rows, long Tokens, long FirstSequence, string PlanId);

    public sealed record PublishPrepInput(PrepContext Context, int SequencesPerShard, IReadOnlyList<ShardPart> Parts);

    private sealed class Runner : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            scope.Report(p => p with { Phase = "resolve inputs" });
            var parameters = scope.Step.Parameters;
            var inputs = await scope.CallAsync<PrepInputs>(Resolve,
                new ResolveInput(scope.Run.RunId, scope.Step.Id, parameters, scope.Run.ExperimentDirectory, scope.Step.FanOutCount));
            if (await scope.TryCachedAsync(ArtifactKey.FromParts(Type, Version, inputs.KeyHash)) is { } cached)
            {
                return cached;
            }

            var measures = await scope.FanOutAsync(inputs.Files.Count,
                i => scope.CallAsync<MeasureResult>(Measure, new MeasureInput(scope.Run.RunId, parameters, inputs.Files[i]), shard: $"input {inputs.Files[i].Key}"),
                "measure");
            var context = new PrepContext(scope.Run.RunId, scope.Step.Id, parameters, inputs.KeyHash, scope.Step.FanOutCount, measures);
            scope.Report(p => p with { Phase = "plan" });
            var plan = await scope.CallAsync<PlanInfo>(PlanActivity, context);
            var parts = await scope.FanOutAsync(plan.ShardCount,
                j => scope.CallAsync<ShardPart>(Write, new WriteInput(context, plan.SequencesPerShard, j), shard: $"{j}"),
                "write shards");
            scope.Report(p => p with { Phase = "publish" });
            return await scope.CallAsync<StepOutput>(Publish, new PublishPrepInput(context, plan.SequencesPerShard, parts));
        }
    }

    private sealed class Work(EngineServices services)
    {
        private readonly ConcurrentDictionary<string, Lazy<ITokenizer>> _tokenizers = new(StringComparer.Ordinal);

        private ITokenizer Tokenizer(string name) =>
            _tokenizers.GetOrAdd(name, n => new Lazy<ITokenizer>(() => services.Options.ResolveTokenizer(n))).Value;

        /// <summary>The step's typed parameters (what the template bound, nothing else), its tokenizer and data-prep options.</summary>
        private (PrepareDataParameters Parameters, ITokenizer Tokenizer, DataPrepOptions Options) Setup(string runId, string parametersJson)
        {
            var parameters = StepParameters.Bind<PrepareDataParameters>(parametersJson, $"run {runId}, prepare-data");
            var tokenizer = Tokenizer(parameters.Tokenizer);
            return (parameters, tokenizer, SpecMapping.ToDataPrepOptions(parameters, tokenizer) with { Threads = 1 });
        }

        public async Task<PrepInputs> ResolveAsync(ResolveInput input)
        {
            var (parameters, tokenizer, options) = Setup(input.RunId, input.Parameters);
            // data.paths, relative to the experiment file; without them the registered corpus data.corpus, whose
            // manifest already holds each file's key and SHA-256.
            var files = parameters.Paths is { Count: > 0 } paths
                ? InputFile.Discover([.. paths.Select(p => Path.GetFullPath(p, input.ExperimentDirectory))])
                    .Select(f => (f.Key, f.Path, Sha256: CorpusMeasurer.Sha256Of(f.Path), Bytes: 0L, FromCorpus: false)).ToList()
                : (await CorpusInputs.ResolveAsync(services, parameters.Corpus)).Select(f => (f.Key, Path: f.Blob, f.Sha256, f.Bytes, FromCorpus: true)).ToList();
            var fingerprint = CorpusMeasurer.ReaderFingerprint(options.Reader);
            var refs = files.Select(f =>
            {
                var measureKey = ArtifactKey.Compute(MeasureActivity, MeasureVersion,
                    new JsonObject { ["fileKey"] = f.Key, ["reader"] = fingerprint, ["tokenizer"] = tokenizer.Id },
                    new Dictionary<string, string> { ["input"] = f.Sha256 });
                return new InputRef(f.Key, f.Path, f.Sha256, measureKey.Hash, f.Bytes, f.FromCorpus);
            }).ToList();

            // Options minus the thread count (which never changes the output), as canonical JSON.
            var inputs = new JsonObject
            {
                ["options"] = JsonNode.Parse(JsonSerializer.Serialize(options, ReportJson.Options)),
                ["tokenizer"] = tokenizer.Id,
                ["shards"] = input.ShardCount,
                ["inputs"] = new JsonArray([.. refs.Select(r => (JsonNode?)JsonValue.Create(r.Key))]),
            };
            var key = ArtifactKey.Compute(Type, Version, inputs, refs.ToDictionary(r => "input:" + r.Key, r => r.Sha256, StringComparer.Ordinal));
            return new PrepInputs(key.Hash, refs);
        }

        public async Task<MeasureResult> MeasureAsync(MeasureInput input)
        {
            // Runs started together (a sweep's variants) measure a shared input once: the others wait for that index.
            var key = ArtifactKey.FromParts(MeasureActivity, MeasureVersion, input.File.MeasureKeyHash);
            return await SingleFlight.RunAsync(services.Store, key,
                async () => await services.Manifests.TryGetAsync(key) is { } existing ? new MeasureResult(input.File.Key, key.Hash, existing.ContentHash, Cached: true) : null,
                () => MeasureNowAsync(input, key));
        }

        private async Task<MeasureResult> MeasureNowAsync(MeasureInput input, ArtifactKey key)
        {
            var (_, tokenizer, options) = Setup(input.RunId, input.Parameters);
            var path = input.File.FromCorpus
                ? await CorpusInputs.LocalPathAsync(services, new CorpusFile(input.File.Key, input.File.Sha256, input.File.Bytes))
                : input.File.Path;
            var scratch = services.NewScratchDirectory("measure");
            try
            {
                if (CorpusMeasurer.Sha256Of(path) != input.File.Sha256)
                {
                    throw new InvalidDataException($"{path} changed since the run resolved its inputs (SHA-256 differs): resubmit the run");
                }

                await DataPrepPipeline.MeasureAsync(new InputFile(path, input.File.Key), options, tokenizer, scratch, null, CancellationToken.None);
                var writer = services.Manifests.BeginWrite(key, services.Producer(input.RunId));
                foreach (var file in Directory.EnumerateFiles(scratch).Order(StringComparer.Ordinal))
                {
                    await using var content = File.OpenRead(file);
                    await writer.PutAsync(Path.GetFileName(file), content);
                }

                var published = await writer.PublishAsync();
                return new MeasureResult(input.File.Key, key.Hash, published.Manifest.ContentHash, Cached: false);
            }
            finally
            {
                Directory.Delete(scratch, recursive: true);
            }
        }

        /// <summary>Downloads (once per machine, verified) every input's length index and token cache into one folder.</summary>
        private async Task<string> LocalIndexes(PrepContext context)
        {
            var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', context.Measures.Select(m => m.ContentHash)))));
            var folder = services.CacheFolder("dataprep-index", id);
            Directory.CreateDirectory(folder);
            foreach (var m in context.Measures)
            {
                var manifest = await services.Manifests.TryGetAsync(ArtifactKey.FromParts(MeasureActivity, MeasureVersion, m.MeasureKeyHash))
                               ?? throw new InvalidDataException($"the index of input '{m.FileKey}' is gone from the store (key {m.MeasureKeyHash})");
                foreach (var entry in manifest.Entries)
                {
                    var target = Path.Combine(folder, entry.Path);
                    if (!File.Exists(target) || new FileInfo(target).Length != entry.Length)
                    {
                        await services.Manifests.DownloadVerifiedToFileAsync(manifest, entry.Path, target);
                    }
                }
            }

            return folder;
        }

        private async Task<(PackingPlan Plan, string IndexFolder)> MakePlan(PrepContext context, int? sequencesPerShard)
        {
            var (_, tokenizer, options) = Setup(context.RunId, context.Parameters);
            var folder = await LocalIndexes(context);
            var indexes = context.Measures
                .Select(m => LengthIndexStore.TryLoad(folder, m.FileKey) ?? throw new InvalidDataException($"index of '{m.FileKey}' did not load from {folder}"))
                .ToList();
            if (sequencesPerShard is { } sps)
            {
                return (DataPrepPipeline.Plan(indexes, options with { SequencesPerShard = sps }, tokenizer), folder);
            }

            var plan = DataPrepPipeline.Plan(indexes, options, tokenizer);
            var wanted = (int)Math.Max(1, (plan.SequenceCount + context.ShardCount - 1) / Math.Max(1, context.ShardCount));
            return wanted == options.SequencesPerShard ? (plan, folder) : (DataPrepPipeline.Plan(indexes, options with { SequencesPerShard = wanted }, tokenizer), folder);
        }

        public async Task<PlanInfo> PlanAsync(PrepContext context)
        {
            var (plan, _) = await MakePlan(context, null);
            if (plan.SequenceCount == 0)
            {
                throw new InvalidDataException($"the plan selects no complete sequence of {plan.Options.ContextLength} tokens: raise data.token_budget or add inputs");
            }

            return new PlanInfo(plan.PlanId, plan.ShardCount, plan.Options.SequencesPerShard, plan.SequenceCount);
        }

        public async Task<ShardPart> WriteAsync(WriteInput input)
        {
            var (plan, folder) = await MakePlan(input.Context, input.SequencesPerShard);
            var scratch = services.NewScratchDirectory("shard");
            try
            {
                var receipt = await DataPrepPipeline.WriteShardAsync(plan, input.Shard, folder, scratch, CancellationToken.None);
                var key = ArtifactKey.FromParts(Type, Version, input.Context.KeyHash);
                var entry = await ManifestPublisher.UploadAsync(services.Store, key, ManifestPublisher.NewAttemptId(), $"{DataFolder}/{receipt.File}", Path.Combine(scratch, receipt.File));
                if (entry.Sha256 != receipt.Sha256)
                {
                    throw new InvalidDataException($"shard {input.Shard}: uploaded SHA-256 {entry.Sha256} differs from the writer's {receipt.Sha256}");
                }

                return new ShardPart(receipt.Shard, receipt.File, entry.Blob, receipt.Bytes, receipt.Sha256, receipt.Rows, receipt.Tokens, receipt.FirstSequence, receipt.PlanId);
            }
            finally
            {
                Directory.Delete(scratch, recursive: true);
            }
        }

        public async Task<StepOutput> PublishAsync(PublishPrepInput input)
        {
            var key = ArtifactKey.FromParts(Type, Version, input.Context.KeyHash);
            if (await services.Manifests.TryGetAsync(key) is { } done)
            {
                // Published already (a forced rerun, or a racing run of the same key): the shards just written must be
                // the published ones, bit for bit; a difference is a reproducibility failure, named shard by shard.
                var mismatches = ShardMismatches(done, input.Parts);
                if (mismatches.Count > 0)
                {
                    throw new InvalidDataException($"data prep did not reproduce the published output {key.Prefix}: {string.Join("; ", mismatches)}");
                }

                return new StepOutput(input.Context.Step, Type, key.Hash, key.Prefix, done.ContentHash, Cached: false);
            }

            var (plan, _) = await MakePlan(input.Context, input.SequencesPerShard);
            var scratch = services.NewScratchDirectory("publish");
            try
            {
                // The same statistics, charts and manifest wf prep writes beside its shards (DataPrepPipeline.Publish).
                DataPrepPipeline.Publish(plan, [.. input.Parts.Select(p => new ShardReceipt(p.Shard, p.File, p.Sha256, p.Bytes, p.Rows, p.Tokens, p.FirstSequence, p.PlanId))], scratch);
                var attempt = ManifestPublisher.NewAttemptId();
                var entries = input.Parts.Select(p => new ManifestEntry($"{DataFolder}/{p.File}", p.Blob, p.Bytes, p.Sha256)).ToList();
                foreach (var name in DataPrepPipeline.PublishedFiles)
                {
                    entries.Add(await ManifestPublisher.UploadAsync(services.Store, key, attempt, $"{DataFolder}/{name}", Path.Combine(scratch, name)));
                }

                var result = await ManifestPublisher.PublishAsync(services, key, input.Context.RunId, entries,
                    new Dictionary<string, string>
                    {
                        ["planId"] = plan.PlanId,
                        ["sequences"] = plan.SequenceCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["contextLength"] = plan.Options.ContextLength.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    });
                return new StepOutput(input.Context.Step, Type, key.Hash, key.Prefix, result.Manifest.ContentHash, Cached: false);
            }
            finally
            {
                Directory.Delete(scratch, recursive: true);
            }
        }
    }

    /// <summary>Each shard whose recomputed SHA-256 differs from the published manifest's: "shard 2 (data/shard-00002.parquet): expected X, got Y".</summary>
    public static IReadOnlyList<string> ShardMismatches(Manifest published, IReadOnlyList<ShardPart> recomputed)
    {
        var problems = new List<string>();
        foreach (var part in recomputed.OrderBy(p => p.Shard))
        {
            var path = $"{DataFolder}/{part.File}";
            var entry = published.Find(path);
            if (entry is null)
            {
                problems.Add($"shard {part.Shard} ({path}): not in the published output, got {part.Sha256}");
            }
            else if (entry.Sha256 != part.Sha256)
            {
                problems.Add($"shard {part.Shard} ({path}): expected {entry.Sha256}, got {part.Sha256}");
            }
        }

        return problems;
    }

    /// <summary>Downloads a prepare-data output's <c>data/</c> folder (verified, once per content hash): what <c>wf prep</c> writes.</summary>
    public static Task<string> DownloadDataAsync(EngineServices services, StepOutput output, CancellationToken cancellationToken = default) =>
        StepOutputs.DownloadAsync(services, output, DataFolder, cancellationToken);
}
