using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

[Collection(EngineCollection.Name)]
public sealed class OrchestrationTests(EngineFixture engine)
{
    private static string NewTest() => "t" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public async Task A_64_item_fan_out_publishes_a_manifest_listing_each_item_once_and_a_second_run_is_fully_cached()
    {
        var test = NewTest();
        var request = engine.Request(EngineFixture.Step("items", "test-items", 64, test));

        var first = await engine.RunAsync(request);

        first.Record.Status.Should().Be(RunStatus.Succeeded, first.Record.Error);
        engine.Executions[test].Should().Be(64);
        var output = first.Result!.Outputs["items"];
        output.Cached.Should().BeFalse();
        var manifest = await engine.Host.Services.Manifests.TryGetAsync(ArtifactKey.FromParts(output.Activity, "1", output.KeyHash));
        manifest.Should().NotBeNull();
        manifest!.Entries.Select(e => e.Path).Should().BeEquivalentTo(Enumerable.Range(0, 64).Select(i => $"items/{i:D5}.bin"));
        manifest.Entries.Select(e => e.Path).Should().OnlyHaveUniqueItems();
        foreach (var entry in manifest.Entries.Take(3))
        {
            await using var stream = await engine.Host.Services.Manifests.OpenVerifiedAsync(manifest, entry.Path);
            using var reader = new StreamReader(stream);
            (await reader.ReadToEndAsync()).Should().Be($"{test}: item {int.Parse(entry.Path[6..11])} of 64\n");
        }

        first.Progress!.Steps["items"].Done.Should().Be(64);
        first.Record.Steps.Single(s => s.Step == "items").Status.Should().Be(StepStates.Succeeded);

        var second = await engine.RunAsync(request);

        second.Record.Status.Should().Be(RunStatus.Succeeded, second.Record.Error);
        engine.Executions[test].Should().Be(64, "a cached run executes no item");
        second.Result!.Outputs["items"].Cached.Should().BeTrue();
        second.Result.Outputs["items"].ContentHash.Should().Be(output.ContentHash);
        second.Record.Steps.Single(s => s.Step == "items").Cached.Should().BeTrue();
    }

    [Fact]
    public async Task An_item_failing_once_is_retried_and_the_run_succeeds()
    {
        var test = NewTest();
        engine.Failures[test] = (Item: 3, Times: 1);

        var view = await engine.RunAsync(engine.Request(EngineFixture.Step("items", "test-items", 8, test)));

        view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
        engine.Executions[test].Should().Be(9, "eight items plus one retry");
        view.Progress!.Steps["items"].Retries.Should().Be(1);
        view.Progress.Steps["items"].Attempts.Should().Be(2);
    }

    [Fact]
    public async Task A_step_failing_after_its_retries_fails_the_run_with_step_shard_and_error_and_skips_what_needs_it()
    {
        var test = NewTest();
        engine.Failures[test] = (Item: 5, Times: int.MaxValue);

        var view = await engine.RunAsync(engine.Request(
            EngineFixture.Step("broken", "test-items", 8, test, maxAttempts: 2),
            EngineFixture.Step("after", "test-items", 2, NewTest(), needs: ["broken"])));

        view.Record.Status.Should().Be(RunStatus.Failed);
        view.Record.Error.Should().Contain("step 'broken'").And.Contain("shard 5").And.Contain("item 5 broke on purpose").And.Contain("after 2 attempts");
        var step = view.Record.Steps.Single(s => s.Step == "broken");
        step.Status.Should().Be(StepStates.Failed);
        step.Shard.Should().Be("5");
        view.Progress!.Steps["after"].State.Should().Be(StepStates.Skipped);
        view.Record.Steps.Single(s => s.Step == "after").Status.Should().Be(StepStates.Skipped);
    }

    [Fact]
    public async Task Independent_steps_run_in_parallel_and_a_step_type_without_a_handler_fails_clearly()
    {
        var view = await engine.RunAsync(engine.Request(
            EngineFixture.Step("a", "test-items", 2, NewTest()),
            EngineFixture.Step("b", "test-items", 2, NewTest()),
            EngineFixture.Step("needle", "not-a-step-type", 1, NewTest(), needs: ["a", "b"])));

        view.Record.Status.Should().Be(RunStatus.Failed);
        view.Record.Error.Should().Contain("step type 'not-a-step-type' is not available in this build");
        var a = view.Progress!.Steps["a"];
        var b = view.Progress.Steps["b"];
        a.State.Should().Be(StepStates.Succeeded);
        b.State.Should().Be(StepStates.Succeeded);
        // Both started before either finished: neither waited for the other.
        a.StartedAt.Should().BeBefore(b.CompletedAt!.Value);
        b.StartedAt.Should().BeBefore(a.CompletedAt!.Value);
    }
}
