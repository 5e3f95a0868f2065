using System.Text;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

/// <summary>A GPU job type for tests: real agent, lease, status blobs, event and publish; the "work" is one small blob.</summary>
public sealed class TestGpuHandler(EngineServices services, EngineFixture engine) : IGpuJobHandler
{
    public const string StepType = "test-gpu";

    public string Type => StepType;

    public async Task<StepOutput> RunAsync(GpuJob job, Action<string> reportProgress, CancellationToken cancellationToken)
    {
        var test = job.Parameters["test"];
        engine.Executions.AddOrUpdate(test, 1, (_, n) => n + 1);
        if (engine.Failures.TryGetValue(test, out var f) && f.Times > 0)
        {
            engine.Failures[test] = (f.Item, f.Times - 1);
            throw new InvalidOperationException("the GPU fell off the bus (on purpose)");
        }

        reportProgress("working");
        var key = ArtifactKey.FromParts(job.Type, GpuJobStep.Version, job.KeyHash);
        var writer = services.Manifests.BeginWrite(key, services.Producer(job.RunId));
        using var content = new MemoryStream(Encoding.UTF8.GetBytes($"model of {test}\n"));
        await writer.PutAsync("final-model/model.txt", content, cancellationToken);
        var published = await writer.PublishAsync(cancellationToken: cancellationToken);
        return new StepOutput(job.Step, key.Activity, key.Hash, key.Prefix, published.Manifest.ContentHash, Cached: false);
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
        (await jobs.GetStatusAsync($"{first.Record.RunId}.train.1"))!.State.Should().Be(GpuJobStates.Failed);
        var succeeded = (await jobs.GetStatusAsync($"{first.Record.RunId}.train.2"))!;
        succeeded.State.Should().Be(GpuJobStates.Succeeded);
        succeeded.Agent.Should().Be(engine.Agent.AgentId);
        var output = first.Result!.Outputs["train"];
        (await engine.Host.Services.Manifests.TryGetAsync(ArtifactKey.FromParts(output.Activity, GpuJobStep.Version, output.KeyHash)))!
            .Find("final-model/model.txt").Should().NotBeNull();

        var second = await engine.RunAsync(request);

        second.Record.Status.Should().Be(RunStatus.Succeeded, second.Record.Error);
        second.Result!.Outputs["train"].Cached.Should().BeTrue();
        engine.Executions[test].Should().Be(2, "a cached GPU step enqueues no job");
    }
}
