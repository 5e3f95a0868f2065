using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using Workflows.Artifacts.Store;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Tests;

/// <summary>
/// The GPU agent's lease rules against the real store (Azurite): a job another agent's lease holds is never taken;
/// a lease that cannot be renewed stops the job's work and nothing more is written under it; the next claim records
/// why the last one ended; a job record changed after it was enqueued is refused. The job type here has a handler
/// only in these tests' agents, so the fixture's own agent leaves these jobs alone.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class GpuLeaseTests(EngineFixture engine)
{
    private const string LeaseTestType = "lease-test";

    private GpuJobStore Jobs => new(engine.Host.Services.Store);

    [Fact]
    public async Task An_agent_never_takes_a_job_whose_lease_another_agent_holds_and_takes_it_once_released()
    {
        var runs = 0;
        var agent = Agent(_ =>
        {
            runs++;
            return Task.CompletedTask;
        });
        var job = await EnqueueAsync();

        await using (var other = await engine.Host.Services.Store.TryAcquireLeaseAsync(GpuJobStore.StatusBlob(job.Ref), TimeSpan.FromSeconds(15)))
        {
            other.Should().NotBeNull();
            (await agent.TryRunAsync(job.Ref, CancellationToken.None)).Should().BeFalse("another agent's lease holds the job");
            var untouched = (await Jobs.GetStatusAsync(job.Ref))!;
            untouched.State.Should().Be(GpuJobStates.Queued);
            untouched.Claims.Should().BeEmpty();
            runs.Should().Be(0);
        }

        (await agent.TryRunAsync(job.Ref, CancellationToken.None)).Should().BeTrue();
        runs.Should().Be(1);
        var done = (await Jobs.GetStatusAsync(job.Ref))!;
        done.State.Should().Be(GpuJobStates.Succeeded);
        done.Claims.Should().ContainSingle().Which.Ended.Should().Be(ClaimEndings.Succeeded);
        (await Jobs.ListOpenAsync()).Should().NotContain(job.Ref, "a finished job leaves the queue index agents poll");
    }

    [Fact]
    public async Task A_lease_that_cannot_be_renewed_stops_the_work_writes_nothing_more_and_the_next_claim_says_why_the_last_ended()
    {
        var started = new TaskCompletionSource();
        var stoppedAfter = new TaskCompletionSource<TimeSpan>();
        var broken = Stopwatch.StartNew();
        var attempt = 0;
        var agent = Agent(async ct =>
        {
            if (Interlocked.Increment(ref attempt) > 1)
            {
                return; // the second claim finishes at once
            }

            started.SetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            finally
            {
                stoppedAfter.SetResult(broken.Elapsed);
            }
        });
        var job = await EnqueueAsync();

        var first = agent.TryRunAsync(job.Ref, CancellationToken.None);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30));
        // An operator (or a lapse and another agent) takes the lease away: the next renewal finds out.
        var lease = new BlobClient(engine.Connection.ConnectionString, engine.Host.Services.Options.ContainerName, GpuJobStore.StatusBlob(job.Ref)).GetBlobLeaseClient();
        broken.Restart();
        await lease.BreakAsync(TimeSpan.Zero);
        (await first.WaitAsync(TimeSpan.FromSeconds(30))).Should().BeTrue();

        (await stoppedAfter.Task).Should().BeLessThan(WorkerProgram.ShortLease.RenewEvery + TimeSpan.FromSeconds(2),
            "the work stops at the first renewal that fails, not when the job ends");
        agent.LeasesLost.Should().Be(1);
        var afterLoss = (await Jobs.GetStatusAsync(job.Ref))!;
        afterLoss.State.Should().Be(GpuJobStates.Running, "an agent that lost its lease writes nothing: the next claimer records the ending");
        afterLoss.Claims.Should().ContainSingle().Which.EndedAt.Should().BeNull();

        (await agent.TryRunAsync(job.Ref, CancellationToken.None)).Should().BeTrue();
        var done = (await Jobs.GetStatusAsync(job.Ref))!;
        done.State.Should().Be(GpuJobStates.Succeeded);
        done.Claims.Should().HaveCount(2);
        done.Claims[0].Ended.Should().StartWith(ClaimEndings.LeaseLost).And.Contain("no longer ours");
        done.Claims[0].EndedAt.Should().NotBeNull();
        done.Claims[1].Ended.Should().Be(ClaimEndings.Succeeded);
    }

    [Fact]
    public async Task A_job_changed_after_it_was_enqueued_is_refused_whether_its_bytes_or_its_parameters_changed()
    {
        var agent = Agent(_ => Task.CompletedTask);

        // Bytes changed behind the store's back: the SHA-256 recorded at enqueue no longer matches.
        var tampered = await EnqueueAsync();
        var blob = new BlobClient(engine.Connection.ConnectionString, engine.Host.Services.Options.ContainerName, GpuJobStore.JobBlob(tampered.Ref));
        var original = (await blob.DownloadContentAsync()).Value;
        var text = original.Content.ToString();
        var changed = text.Replace(":400,", ":401,", StringComparison.Ordinal); // delay_ms in the parameters
        changed.Should().NotBe(text);
        await blob.UploadAsync(new BinaryData(Encoding.UTF8.GetBytes(changed)),
            new Azure.Storage.Blobs.Models.BlobUploadOptions { Metadata = original.Details.Metadata }); // bit rot: new bytes, the old recorded hash
        var refused = await FluentActions.Awaiting(() => agent.TryRunAsync(tampered.Ref, CancellationToken.None)).Should().ThrowAsync<ArtifactCorruptedException>();
        refused.Which.Message.Should().Contain(GpuJobStore.JobBlob(tampered.Ref));

        // Parameters changed by a writer that kept the old key: the agent recomputes the key and refuses to run it.
        var job = await EnqueueAsync(enqueue: false);
        var altered = job with { Work = job.Work with { Parameters = new TestParameters("someone else", DelayMs: 1).Json() } };
        await Jobs.EnqueueAsync(altered);
        (await agent.TryRunAsync(job.Ref, CancellationToken.None)).Should().BeTrue();
        var status = (await Jobs.GetStatusAsync(job.Ref))!;
        status.State.Should().Be(GpuJobStates.Failed);
        status.Error.Should().Contain("does not hash to its key");
    }

    private GpuAgent Agent(Func<CancellationToken, Task> work) =>
        new(engine.Host.Services, [new LeaseTestHandler(work)]) { Lease = WorkerProgram.ShortLease };

    private async Task<GpuJob> EnqueueAsync(bool enqueue = true)
    {
        var test = "lease" + Guid.NewGuid().ToString("N")[..10];
        var work = new StepJob(test, "step", LeaseTestType, new TestParameters(test).Json(), new Dictionary<string, StepOutput>(), engine.RepositoryRoot, [], "",
            Recompute: false);
        work = work with { KeyHash = work.ComputeKey().Hash };
        var job = new GpuJob(test, "step.1", GpuJobStep.EventName($"{test}.step.1"), DateTimeOffset.UtcNow, work);
        if (enqueue)
        {
            await Jobs.EnqueueAsync(job);
        }

        return job;
    }

    /// <summary>A GPU job type whose work is whatever the test says; publishes one small file.</summary>
    private sealed class LeaseTestHandler(Func<CancellationToken, Task> work) : JobHandler<TestParameters>(TestContract)
    {
        public static readonly StepContract TestContract = new(LeaseTestType, typeof(TestParameters), [], Gpu: true, "lease tests");

        protected override async Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, TestParameters parameters, Action<string> reportProgress,
            CancellationToken cancellationToken)
        {
            await work(cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(job.OutputFolder("out"), "done.txt"), JsonSerializer.Serialize(parameters), cancellationToken);
            return new Dictionary<string, string>();
        }
    }
}
