using System.Text.Json.Nodes;
using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Tests;

/// <summary>The parameters of the tests' step types: which test a step belongs to, how slow its items are, how long a GPU job "trains".</summary>
public sealed record TestParameters(string Test, int DelayMs = 400, int Seconds = 0) : IStepParameters
{
    public string Json() => StepParameters.ToJson(this);
}

/// <summary>One item of a fanned-out test step, as its producer sees it.</summary>
public sealed record FanOutItem(string RunId, string Step, int Index, int Count, TestParameters Parameters, IReadOnlyDictionary<string, StepOutput> Inputs);

/// <summary>
/// A content-addressed fan-out step for tests: N item activities each write one blob, a publish activity writes the
/// manifest listing every item once. The key covers the step type, its parameters, the fan-out count and the content
/// hashes of its inputs, so a second run with the same inputs is a cache hit and runs no item.
/// </summary>
public static class FanOutArtifactStep
{
    public static StepContract Contract(string type, params string[] inputs) =>
        new(type, typeof(TestParameters), [.. inputs.Select(i => new StepInput(i))], Gpu: false, "test items");

    public static StepHandler Create(EngineServices services, StepContract contract, Func<FanOutItem, CancellationToken, Task<byte[]>> produce)
    {
        var itemActivity = $"{contract.Type}.item";
        var publishActivity = $"{contract.Type}.publish";
        return new StepHandler(contract, new Runner(contract.Type, itemActivity, publishActivity),
        [
            new ActivityRegistration(itemActivity, new ItemActivity(services, produce)),
            new ActivityRegistration(publishActivity, new PublishActivity(services)),
        ]);
    }

    public sealed record ItemInput(string RunId, string Step, string KeyHash, string Type, int Index, int Count, string Parameters, IReadOnlyDictionary<string, StepOutput> Inputs);

    public sealed record ItemOutput(string Path, string Blob, long Length, string Sha256);

    public sealed record PublishInput(string RunId, string Step, string Type, string KeyHash, IReadOnlyList<ItemOutput> Items);

    private sealed class Runner(string type, string itemActivity, string publishActivity) : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            var inputs = scope.Inputs.Values.ToDictionary(o => o.Activity, StringComparer.Ordinal);
            var key = ArtifactKey.Compute(type, StepOutputs.Version,
                new JsonObject { ["parameters"] = JsonNode.Parse(scope.Step.Parameters), ["count"] = scope.Step.FanOutCount },
                inputs.ToDictionary(i => i.Key, i => i.Value.ContentHash, StringComparer.Ordinal));
            if (await scope.TryCachedAsync(key) is { } cached)
            {
                return cached;
            }

            var count = scope.Step.FanOutCount;
            var items = await scope.FanOutAsync(count, i => scope.CallAsync<ItemOutput>(itemActivity,
                new ItemInput(scope.Run.RunId, scope.Step.Id, key.Hash, type, i, count, scope.Step.Parameters, inputs), shard: $"{i}"), "items");
            scope.Report(p => p with { Phase = "publish" });
            return await scope.CallAsync<StepOutput>(publishActivity, new PublishInput(scope.Run.RunId, scope.Step.Id, type, key.Hash, items));
        }
    }

    private sealed class ItemActivity(EngineServices services, Func<FanOutItem, CancellationToken, Task<byte[]>> produce) : AsyncTaskActivity<ItemInput, ItemOutput>
    {
        protected override async Task<ItemOutput> ExecuteAsync(TaskContext context, ItemInput input)
        {
            var parameters = StepParameters.Bind<TestParameters>(input.Parameters, input.Step);
            var bytes = await produce(new FanOutItem(input.RunId, input.Step, input.Index, input.Count, parameters, input.Inputs), CancellationToken.None);
            var key = ArtifactKey.FromParts(input.Type, StepOutputs.Version, input.KeyHash);
            // Each execution writes under its own attempt folder: a duplicate delivery never overwrites published bytes.
            var path = $"items/{input.Index:D5}.bin";
            var blob = $"{key.Prefix}{ManifestPublisher.NewAttemptId()}/{path}";
            using var content = new MemoryStream(bytes, writable: false);
            var stored = await services.Store.PutAsync(blob, content);
            return new ItemOutput(path, blob, stored.Length, stored.Sha256);
        }
    }

    private sealed class PublishActivity(EngineServices services) : AsyncTaskActivity<PublishInput, StepOutput>
    {
        protected override async Task<StepOutput> ExecuteAsync(TaskContext context, PublishInput input)
        {
            var key = ArtifactKey.FromParts(input.Type, StepOutputs.Version, input.KeyHash);
            var result = await ManifestPublisher.PublishAsync(services, key, input.RunId,
                input.Items.Select(i => new ManifestEntry(i.Path, i.Blob, i.Length, i.Sha256)).ToList(), null);
            return new StepOutput(input.Step, key.Activity, key.Hash, key.Prefix, result.Manifest.ContentHash, Cached: false);
        }
    }
}
