using System.Text.Json.Nodes;
using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Store;
using Workflows.Engine.Activities;
using Workflows.Engine.Orchestration;

namespace Workflows.Engine.Steps;

/// <summary>One item of a fanned-out step, as its producer sees it.</summary>
public sealed record FanOutItem(string RunId, string Step, int Index, int Count, IReadOnlyDictionary<string, string> Parameters);

/// <summary>
/// A generic content-addressed fan-out step: N item activities each write one blob, a publish activity writes the
/// manifest listing every item once. The key covers the step type, its version, its parameters, the fan-out count and
/// the content hashes of the steps it needs, so a second run with the same inputs is a cache hit and runs no item.
/// Used for step types whose work is "produce item i" (tests, benchmarks, simple per-shard transforms).
/// </summary>
public static class FanOutArtifactStep
{
    public static StepHandler Create(EngineServices services, string type, string version, Func<FanOutItem, CancellationToken, Task<byte[]>> produce)
    {
        var itemActivity = $"{type}.item";
        var publishActivity = $"{type}.publish";
        return new StepHandler(type, new Runner(type, version, itemActivity, publishActivity),
        [
            new ActivityRegistration(itemActivity, new ItemActivity(services, produce)),
            new ActivityRegistration(publishActivity, new PublishActivity(services)),
            new ActivityRegistration(ActivityNames.LookupCache, new LookupCacheActivity(services)),
        ]);
    }

    public static ArtifactKey KeyOf(string type, string version, StepScope scope)
    {
        var inputs = new JsonObject
        {
            ["parameters"] = new JsonObject(scope.Step.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value)))),
            ["count"] = scope.Step.FanOutCount,
        };
        return ArtifactKey.Compute(type, version, inputs, scope.Inputs.ToDictionary(i => i.Key, i => i.Value.ContentHash, StringComparer.Ordinal));
    }

    public sealed record ItemInput(string RunId, string Step, string Activity, string ActivityVersion, string KeyHash, int Index, int Count, IReadOnlyDictionary<string, string> Parameters);

    public sealed record ItemOutput(string Path, string Blob, long Length, string Sha256);

    public sealed record PublishInput(string RunId, string Step, string Activity, string ActivityVersion, string KeyHash, IReadOnlyList<ItemOutput> Items);

    private sealed class Runner(string type, string version, string itemActivity, string publishActivity) : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            var key = KeyOf(type, version, scope);
            scope.Report(p => p with { Phase = "cache check", OutputPrefix = key.Prefix });
            var cached = scope.Run.MayReuseCache(scope.Step.Id)
                ? await scope.CallAsync<StepOutput?>(ActivityNames.LookupCache, new CacheQuery(scope.Step.Id, key.Activity, key.ActivityVersion, key.Hash))
                : null;
            if (cached is not null)
            {
                scope.Report(p => p with { Done = scope.Step.FanOutCount, CachedItems = scope.Step.FanOutCount, Total = scope.Step.FanOutCount });
                return cached;
            }

            var count = scope.Step.FanOutCount;
            var items = await scope.FanOutAsync(count, i => CallItem(scope, key, i, count), "items");
            scope.Report(p => p with { Phase = "publish" });
            return await scope.CallAsync<StepOutput>(publishActivity,
                new PublishInput(scope.Run.RunId, scope.Step.Id, key.Activity, key.ActivityVersion, key.Hash, items));
        }

        private Task<ItemOutput> CallItem(StepScope scope, ArtifactKey key, int i, int count) =>
            scope.CallAsync<ItemOutput>(itemActivity,
                new ItemInput(scope.Run.RunId, scope.Step.Id, key.Activity, key.ActivityVersion, key.Hash, i, count, scope.Step.Parameters),
                shard: $"{i}");
    }

    private sealed class ItemActivity(EngineServices services, Func<FanOutItem, CancellationToken, Task<byte[]>> produce) : AsyncTaskActivity<ItemInput, ItemOutput>
    {
        protected override async Task<ItemOutput> ExecuteAsync(TaskContext context, ItemInput input)
        {
            var bytes = await produce(new FanOutItem(input.RunId, input.Step, input.Index, input.Count, input.Parameters), CancellationToken.None);
            var key = ArtifactKey.FromParts(input.Activity, input.ActivityVersion, input.KeyHash);
            // Each execution writes under its own attempt folder: a duplicate delivery never overwrites published bytes.
            var path = $"items/{input.Index:D5}.bin";
            var blob = $"{key.Prefix}attempt-{Guid.NewGuid().ToString("N")[..16]}/{path}";
            using var content = new MemoryStream(bytes, writable: false);
            var stored = await services.Store.PutAsync(blob, content);
            return new ItemOutput(path, blob, stored.Length, stored.Sha256);
        }
    }

    private sealed class PublishActivity(EngineServices services) : AsyncTaskActivity<PublishInput, StepOutput>
    {
        protected override async Task<StepOutput> ExecuteAsync(TaskContext context, PublishInput input)
        {
            var key = ArtifactKey.FromParts(input.Activity, input.ActivityVersion, input.KeyHash);
            var result = await ManifestPublisher.PublishAsync(services, key, input.RunId,
                input.Items.Select(i => new ManifestEntry(i.Path, i.Blob, i.Length, i.Sha256)).ToList(), null);
            return new StepOutput(input.Step, key.Activity, key.Hash, key.Prefix, result.Manifest.ContentHash, Cached: false);
        }
    }
}

/// <summary>Publishes a manifest assembled from blobs written by several activities (fan-out items).</summary>
public static class ManifestPublisher
{
    public static Task<PublishResult> PublishAsync(EngineServices services, ArtifactKey key, string runId, IReadOnlyList<ManifestEntry> entries,
        IReadOnlyDictionary<string, string>? properties)
    {
        var manifest = new Manifest
        {
            Activity = key.Activity,
            ActivityVersion = key.ActivityVersion,
            KeyHash = key.Hash,
            AttemptId = "attempt-" + Guid.NewGuid().ToString("N")[..16],
            Producer = services.Producer(runId),
            CreatedAt = DateTimeOffset.UtcNow,
            Entries = [.. entries.OrderBy(e => e.Path, StringComparer.Ordinal)],
            Properties = properties,
        };
        return services.Manifests.TryPublishAsync(manifest);
    }

    /// <summary>Uploads a local file under a fresh attempt folder of <paramref name="key"/> and returns its manifest entry.</summary>
    public static async Task<ManifestEntry> UploadAsync(IArtifactStore store, ArtifactKey key, string attemptId, string path, string file, CancellationToken cancellationToken = default)
    {
        var blob = $"{key.Prefix}{attemptId}/{path}";
        await using var content = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        var stored = await store.PutAsync(blob, content, cancellationToken);
        return new ManifestEntry(path, blob, stored.Length, stored.Sha256);
    }

    public static string NewAttemptId() => "attempt-" + Guid.NewGuid().ToString("N")[..16];
}

/// <summary>A step type with N empty activities and no artifacts: measures the engine's own overhead (<c>wf bench engine</c>).</summary>
public static class EmptyFanOutStep
{
    public const string Type = "bench-empty";
    public const string Activity = "bench-empty.item";

    public static StepHandler Create() => new(Type, new Runner(), [new ActivityRegistration(Activity, new Empty())]);

    private sealed class Runner : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            await scope.FanOutAsync(scope.Step.FanOutCount, i => scope.CallAsync<int>(Activity, i, $"{i}"), "items");
            return new StepOutput(scope.Step.Id, Type, new string('0', 64), "", new string('0', 64), Cached: false);
        }
    }

    private sealed class Empty : TaskActivity<int, int>
    {
        protected override int Execute(TaskContext context, int input) => input;
    }
}
