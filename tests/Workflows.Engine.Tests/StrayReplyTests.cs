using System.Diagnostics;
using DurableTask.Core;
using DurableTask.Core.History;
using System.Text.Json.Nodes;
using Newtonsoft.Json.Linq;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Activities;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

/// <summary>
/// DTFx on Azure Storage sends an episode's messages before it commits the episode's history; when storage fails in
/// between (FaultTests saw it), a replayed episode can hand the same task id to another call, and the first episode's
/// reply still arrives and completes whatever task has that id. These tests deliver such stray replies to a live run
/// through DTFx's own client API, at task ids the orchestration is waiting on, and check the run takes none of them.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class StrayReplyTests(EngineFixture engine)
{
    private const string ItemActivity = EngineFixture.ItemsType + ".item";

    [Fact]
    public async Task A_timer_reply_and_another_items_reply_delivered_to_waiting_fan_out_items_are_recognised_and_the_items_asked_again()
    {
        var test = "stray" + Guid.NewGuid().ToString("N")[..8];
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        engine.Gates[test] = gate;
        try
        {
            var step = EngineFixture.Step("items", EngineFixture.ItemsType, 3, test, maxAttempts: 1);
            var runId = await engine.Client.SubmitAsync(engine.Request(step));

            // The three item calls are in the history (so DTFx delivers replies to them) and wait at the gate. A fan-out
            // schedules its items in index order, so their task ids ascend with the index.
            var (executionId, ids) = await ScheduledItemsAsync(runId, count: 3);

            // Item 0 gets a timer's "fired" reply (its task id as the result); item 1 gets item 2's correctly tagged answer
            // (item 2's input rebuilt here as the step builds it; checked below against item 2's real reply).
            var instance = new OrchestrationInstance { InstanceId = runId, ExecutionId = executionId };
            await engine.Host.Service.SendTaskOrchestrationMessageAsync(new TaskMessage
            {
                OrchestrationInstance = instance,
                Event = new TimerFiredEvent(-1) { TimerId = ids[0], FireAt = DateTime.UtcNow },
            });
            var key = ArtifactKey.Compute(EngineFixture.ItemsType, StepOutputs.Version,
                new JsonObject { ["parameters"] = JsonNode.Parse(step.Parameters), ["count"] = 3 }, new Dictionary<string, string>());
            var item2 = new FanOutArtifactStep.ItemInput(runId, "items", key.Hash, EngineFixture.ItemsType, 2, 3, step.Parameters, new Dictionary<string, StepOutput>());
            var item2Tag = ActivityReply.ExpectedTag(ItemActivity, item2);
            var forItem2 = ActivityReply.Wrap(item2Tag, DurableTask.Core.Serializing.JsonDataConverter.Default.Serialize(
                new FanOutArtifactStep.ItemOutput("items/00002.bin", "stray/items/00002.bin", 1, new string('0', 64))));
            await engine.Host.Service.SendTaskOrchestrationMessageAsync(new TaskMessage
            {
                OrchestrationInstance = instance,
                Event = new TaskCompletedEvent(-1, ids[1], forItem2),
            });

            // Both strays are taken from the queue and answered by asking items 0 and 1 again: five item calls in all.
            await ScheduledItemsAsync(runId, count: 5);
            gate.SetResult();

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var run = await engine.Client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(250), cancellationToken: timeout.Token);

            run.Record.Status.Should().Be(RunStatus.Succeeded, run.Record.Error);
            var output = run.Result!.Outputs["items"];
            var manifest = (await engine.Host.Services.Manifests.TryGetAsync(ArtifactKey.FromParts(output.Activity, "1", output.KeyHash)))!;
            manifest.Entries.Select(e => e.Path).Should().BeEquivalentTo(["items/00000.bin", "items/00001.bin", "items/00002.bin"]);
            foreach (var entry in manifest.Entries)
            {
                await using var stream = await engine.Host.Services.Manifests.OpenVerifiedAsync(manifest, entry.Path);
                using var reader = new StreamReader(stream);
                (await reader.ReadToEndAsync()).Should().Be($"{test}: item {int.Parse(entry.Path[6..11])} of 3\n");
            }

            engine.Executions[test].Should().Be(5, "items 0 and 1 were asked twice");
            var history = await HistoryAsync(runId, executionId);
            var item2Reply = history.Single(e => e.Value<int>("EventType") == (int)EventType.TaskCompleted && e.Value<int>("TaskScheduledId") == ids[2]);
            JToken.Parse(item2Reply.Value<string>("Result")!).Value<string>().Should().StartWith(item2Tag + "\n", "the stray reply carried item 2's real tag");
        }
        finally
        {
            gate.TrySetResult();
            engine.Gates.TryRemove(test, out _);
        }
    }

    [Fact]
    public void A_reply_is_read_only_by_the_call_it_answers()
    {
        var input = new FanOutArtifactStep.ItemInput("r", "s", "k", "t", 1, 2, "{}", new Dictionary<string, StepOutput>());
        var serializedInput = DurableTask.Core.Serializing.JsonDataConverter.Default.Serialize(new object[] { input });
        var tag = ActivityReply.Tag(ItemActivity, serializedInput);
        tag.Should().Be(ActivityReply.ExpectedTag(ItemActivity, input), "the orchestration serializes the input as DTFx's ScheduleTask does");

        var output = new FanOutArtifactStep.ItemOutput("items/00001.bin", "b", 3, "abc");
        var reply = JToken.Parse(ActivityReply.Wrap(tag, DurableTask.Core.Serializing.JsonDataConverter.Default.Serialize(output))).Value<string>();
        ActivityReply.TryRead<FanOutArtifactStep.ItemOutput>(reply, tag, out var read).Should().BeTrue();
        read.Should().Be(output);

        ActivityReply.TryRead<FanOutArtifactStep.ItemOutput>(reply, ActivityReply.ExpectedTag(ItemActivity, input with { Index = 0 }), out _).Should().BeFalse("another item's call");
        ActivityReply.TryRead<FanOutArtifactStep.ItemOutput>(reply, ActivityReply.ExpectedTag("other.activity", input), out _).Should().BeFalse("another activity");
        ActivityReply.TryRead<FanOutArtifactStep.ItemOutput>("45", tag, out _).Should().BeFalse("a timer's reply is its id");
        ActivityReply.TryRead<FanOutArtifactStep.ItemOutput>(null, tag, out _).Should().BeFalse();

        var nothing = JToken.Parse(ActivityReply.Wrap(tag, null)).Value<string>();
        ActivityReply.TryRead<StepOutput?>(nothing, tag, out var none).Should().BeTrue("a null result (a cache miss) is an answer too");
        none.Should().BeNull();
    }

    private async Task<List<JObject>> HistoryAsync(string runId, string executionId) =>
        JArray.Parse(await engine.Host.Service.GetOrchestrationHistoryAsync(runId, executionId)).OfType<JObject>().ToList();

    /// <summary>Waits until the run's history holds at least <paramref name="count"/> scheduled item calls; returns their task ids, ascending.</summary>
    private async Task<(string ExecutionId, IReadOnlyList<int> Ids)> ScheduledItemsAsync(string runId, int count)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var state = (await engine.Host.Service.GetOrchestrationStateAsync(runId, allExecutions: false)).FirstOrDefault();
            state?.OrchestrationStatus.Should().BeOneOf([OrchestrationStatus.Pending, OrchestrationStatus.Running],
                $"the run waits at the gate until {count} item calls are scheduled ({state?.Output})");
            if (state?.OrchestrationInstance.ExecutionId is { } executionId)
            {
                var ids = (await HistoryAsync(runId, executionId))
                    .Where(e => IsTaskScheduled(e["EventType"]) && e.Value<string>("Name") == ItemActivity)
                    .Select(e => e.Value<int>("EventId"))
                    .Order()
                    .ToList();
                if (ids.Count >= count)
                {
                    return (executionId, ids);
                }
            }

            watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(60), $"{count} scheduled {ItemActivity} calls in the history of {runId}");
            await Task.Delay(250);
        }
    }

    private static bool IsTaskScheduled(JToken? type) =>
        type?.Type == JTokenType.Integer ? type.Value<int>() == (int)EventType.TaskScheduled : type?.Value<string>() == nameof(EventType.TaskScheduled);
}
