using System.Diagnostics;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Jobs;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;
using Xunit.Abstractions;

namespace Workflows.Engine.Tests;

/// <summary>SIGTERM to real worker and GPU agent processes: drain within the grace period or hand work back, exit 0.</summary>
[Collection(EngineCollection.Name)]
public sealed class ShutdownTests(EngineFixture engine, ITestOutputHelper output)
{
    public static BoundStep SlowStep(string id, int items, string test, int delayMs, int maxAttempts = 3, IReadOnlyList<string>? needs = null) =>
        EngineFixture.Step(id, WorkerProgram.SlowItemsType, items, new TestParameters(test, DelayMs: delayMs), needs, maxAttempts, TimeSpan.FromMinutes(3));

    public static BoundStep SlowGpuStep(string id, string test, int seconds, int maxAttempts = 1) =>
        EngineFixture.Step(id, WorkerProgram.SlowGpuType, 1, new TestParameters(test, Seconds: seconds), maxAttempts: maxAttempts, timeout: TimeSpan.FromMinutes(3));

    [Fact]
    public async Task A_SIGTERMed_worker_finishes_its_running_activities_deletes_its_heartbeat_and_exits_0_and_nothing_runs_twice()
    {
        var (hub, container, cache) = Names("wfterm");
        var test = "term" + Guid.NewGuid().ToString("N")[..8];
        const int items = 12;
        var heartbeat = Path.Combine(cache, "hb", "heartbeat");
        var client = await EngineClient.ConnectAsync(engine.Connection, WorkerProgram.KillTestOptions(hub, container, cache));
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var env = new Dictionary<string, string> { ["WF_SHUTDOWN_GRACE_SECONDS"] = "30", ["WF_HEARTBEAT_FILE"] = heartbeat };
        await using var first = TestProcess.Start("worker", engine.Connection.ConnectionString, hub, container, cache, env, lines);
        TestProcess? second = null;
        try
        {
            var runId = await client.SubmitAsync(engine.Request(SlowStep("slow", items, test, delayMs: 2500)));
            await first.WaitForLineAsync(l => l.StartsWith($"start {test} ", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "a first item start");
            File.Exists(heartbeat).Should().BeTrue("the worker writes its heartbeat as soon as storage answers");
            await Task.Delay(300);
            var runningAtTerm = Started(first.Lines, test).Except(Done(first.Lines, test)).ToList();
            runningAtTerm.Should().NotBeEmpty();

            var watch = Stopwatch.StartNew();
            first.Terminate();
            (await first.WaitForExitAsync(TimeSpan.FromSeconds(45))).Should().BeTrue("the worker must exit within its grace period");
            output.WriteLine($"SIGTERM with {runningAtTerm.Count} item(s) running; exited {first.ExitCode} after {watch.Elapsed.TotalSeconds:0.0}s");
            first.ExitCode.Should().Be(0);
            first.Lines.Should().Contain("exit handed-back=0");
            Done(first.Lines, test).Should().Contain(runningAtTerm, "items running at SIGTERM finish during the grace period");
            File.Exists(heartbeat).Should().BeFalse("a stopping worker removes its heartbeat so it turns unready at once");

            second = TestProcess.Start("worker", engine.Connection.ConnectionString, hub, container, cache, sharedLines: lines);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var final = await client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(500), cancellationToken: timeout.Token);
            final.Record.Status.Should().Be(RunStatus.Succeeded, final.Record.Error);
            var starts = lines.Count(l => l.StartsWith($"start {test} ", StringComparison.Ordinal));
            var redelivered = lines.Count(l => l.StartsWith("redelivered ", StringComparison.Ordinal));
            output.WriteLine($"{starts} item executions for {items} items, {redelivered} redelivered activities; run took {final.Record.Duration?.TotalSeconds:0.0}s");
            starts.Should().Be(items, "a drained worker hands nothing back, so no item runs twice");
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }

            await client.DeleteHubAsync();
        }
    }

    [Fact]
    public async Task A_SIGTERMed_gpu_agent_hands_its_job_back_after_the_grace_period_and_another_agent_resumes_it_from_the_checkpoint()
    {
        var (hub, container, cache) = Names("wfagent");
        var test = "agent" + Guid.NewGuid().ToString("N")[..8];
        var client = await EngineClient.ConnectAsync(engine.Connection, WorkerProgram.KillTestOptions(hub, container, cache));
        var grace = new Dictionary<string, string> { ["WF_SHUTDOWN_GRACE_SECONDS"] = "1" };
        await using var worker = TestProcess.Start("worker", engine.Connection.ConnectionString, hub, container, cache);
        await using var first = TestProcess.Start("agent", engine.Connection.ConnectionString, hub, container, cache, grace);
        TestProcess? second = null;
        try
        {
            var runId = await client.SubmitAsync(engine.Request(SlowGpuStep("train", test, seconds: 8)));
            await first.WaitForLineAsync(l => l.StartsWith("job-start ", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the first agent taking the job");
            await Task.Delay(TimeSpan.FromSeconds(3)); // a few checkpointed steps

            first.Terminate();
            (await first.WaitForExitAsync(TimeSpan.FromSeconds(30))).Should().BeTrue();
            first.ExitCode.Should().Be(0);
            first.Lines.Should().Contain("exit handed-back=1");
            var job = new GpuJobRef(runId, "train.1");
            var status = await new GpuJobStore(client.Store).GetStatusAsync(job);
            status!.State.Should().Be(GpuJobStates.Queued, "a handed-back job is queued again at once, not left to a lapsing lease");
            status.Claims.Should().ContainSingle().Which.Ended.Should().StartWith(ClaimEndings.HandedBack);

            second = TestProcess.Start("agent", engine.Connection.ConnectionString, hub, container, cache);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var final = await client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(500), cancellationToken: timeout.Token);
            final.Record.Status.Should().Be(RunStatus.Succeeded, final.Record.Error);
            var resumedFrom = second.Lines.Single(l => l.StartsWith($"job-start {runId}.train from ", StringComparison.Ordinal));
            int.Parse(resumedFrom.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(0, "the second agent resumes from the checkpoint");
            var done = (await new GpuJobStore(client.Store).GetStatusAsync(job))!;
            done.State.Should().Be(GpuJobStates.Succeeded);
            done.Claims.Should().HaveCount(2, "one claim per agent that ran it");
            done.Claims[0].Agent.Should().Contain($"-{first.Id}-");
            done.Claims[1].Agent.Should().Contain($"-{second.Id}-", "the same job (attempt 1) was finished by the second agent");
            done.Claims[1].Ended.Should().Be(ClaimEndings.Succeeded);
            output.WriteLine($"{resumedFrom}; run took {final.Record.Duration?.TotalSeconds:0.0}s");
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }

            await client.DeleteHubAsync();
        }
    }

    internal (string Hub, string Container, string Cache) Names(string prefix)
    {
        var hub = EngineOptions.UniqueHubName(prefix);
        return (hub, "p-" + Guid.NewGuid().ToString("N")[..20], Path.Combine(engine.CacheDirectory, hub));
    }

    internal static IEnumerable<string> Started(IEnumerable<string> lines, string test) =>
        lines.Where(l => l.StartsWith($"start {test} ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]);

    internal static IEnumerable<string> Done(IEnumerable<string> lines, string test) =>
        lines.Where(l => l.StartsWith($"done {test} ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]);
}
