using Workflows.Artifacts.Runs;
using Workflows.Experiments.Templates;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

/// <summary>A GPU job type for tests: real agent, lease, status blobs, event and publish; the "work" is one small file.</summary>
public sealed class TestGpuHandler(EngineFixture engine) : JobHandler<TestParameters>(TestContract)
{
    public const string StepType = "test-gpu";

    public static readonly StepContract TestContract = new(StepType, typeof(TestParameters), [new StepInput(EngineFixture.ItemsType, Optional: true)], Gpu: true, "test GPU job");

    protected override Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, TestParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        engine.Executions.AddOrUpdate(parameters.Test, 1, (_, n) => n + 1);
        if (engine.Failures.TryGetValue(parameters.Test, out var f) && f.Times > 0)
        {
            engine.Failures[parameters.Test] = (f.Item, f.Times - 1);
            throw new InvalidOperationException("the GPU fell off the bus (on purpose)");
        }

        reportProgress("working");
        File.WriteAllText(Path.Combine(job.OutputFolder("final-model"), "model.txt"), $"model of {parameters.Test}\n");
        return Task.FromResult<IReadOnlyDictionary<string, string>>(new Dictionary<string, string>());
    }
}

[Collection(EngineCollection.Name)]
public sealed class GpuJobTests(EngineFixture engine)
{
    [Fact]
    public async Task A_gpu_job_that_fails_once_is_re_enqueued_run_by_the_agent_signalled_by_event_and_cached_on_rerun()
    {
        var test = "g" + Guid.NewGuid().ToString("N")[..10];
        engine.Failures[test] = (Item: 0, Times: 1);
        var request = engine.Request(
            EngineFixture.Step("data", "test-items", 2, "d" + test),
            EngineFixture.Step("train", TestGpuHandler.StepType, 1, test, needs: ["data"]));

        var first = await engine.RunAsync(request);

        first.Record.Status.Should().Be(RunStatus.Succeeded, first.Record.Error);
        engine.Executions[test].Should().Be(2);
        first.Progress!.Steps["train"].Attempts.Should().Be(2);
        var jobs = new GpuJobStore(engine.Host.Services.Store);
        var failed = (await jobs.GetStatusAsync(new GpuJobRef(first.Record.RunId, "train.1")))!;
        failed.State.Should().Be(GpuJobStates.Failed);
        failed.Claims.Should().ContainSingle().Which.Ended.Should().StartWith(ClaimEndings.Failed).And.Contain("fell off the bus");
        var succeeded = (await jobs.GetStatusAsync(new GpuJobRef(first.Record.RunId, "train.2")))!;
        succeeded.State.Should().Be(GpuJobStates.Succeeded);
        var claim = succeeded.Claims.Should().ContainSingle().Which;
        claim.Agent.Should().Be(engine.Agent.AgentId);
        claim.Ended.Should().Be(ClaimEndings.Succeeded);
        claim.EndedAt.Should().NotBeNull();
        (await jobs.ListOpenAsync()).Should().NotContain(j => j.RunId == first.Record.RunId, "finished jobs leave the queue index");
        var output = first.Result!.Outputs["train"];
        (await engine.Host.Services.Manifests.TryGetAsync(StepOutputs.KeyOf(output)))!
            .Find("final-model/model.txt").Should().NotBeNull();

        var second = await engine.RunAsync(request);

        second.Record.Status.Should().Be(RunStatus.Succeeded, second.Record.Error);
        second.Result!.Outputs["train"].Cached.Should().BeTrue();
        engine.Executions[test].Should().Be(2, "a cached GPU step enqueues no job");
    }
}
