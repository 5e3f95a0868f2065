using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Azure.Storage.Blobs;
using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Jobs;
using Workflows.Engine.Steps;
using Xunit.Abstractions;

namespace Workflows.Engine.Tests;

/// <summary>
/// Fault tests of issue 8 against a real Azurite and real worker processes (loopback only, bounded in time):
/// a storage outage, a corrupted shard, ten concurrent experiments, cancellation.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class FaultTests(EngineFixture engine, ITestOutputHelper output)
{
    public const string ConsumeType = "test-consume";

    /// <summary>
    /// A consumer item: reads every entry of its input (the output of the test-items step it needs), verified by
    /// SHA-256 (as train reads prepared shards), and writes how many bytes it read.
    /// </summary>
    public static async Task<byte[]> ConsumeAsync(EngineServices services, FanOutItem item, CancellationToken cancellationToken)
    {
        var manifest = (await services.Manifests.TryGetAsync(StepOutputs.KeyOf(item.Inputs[EngineFixture.ItemsType]), cancellationToken))!;
        long total = 0;
        foreach (var entry in manifest.Entries)
        {
            await using var stream = await services.Manifests.OpenVerifiedAsync(manifest, entry.Path, cancellationToken);
            var buffer = new byte[8192];
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                total += n;
            }
        }

        return Encoding.UTF8.GetBytes($"{item.Parameters.Test} read {total} bytes\n");
    }

    [Fact]
    public async Task A_corrupted_shard_blob_is_detected_by_its_SHA256_when_consumed_and_the_run_fails_naming_the_blob_and_both_hashes()
    {
        var test = "c" + Guid.NewGuid().ToString("N")[..10];
        var produce = EngineFixture.Step("a", "test-items", 4, test);
        var first = await engine.RunAsync(engine.Request(produce, Consumer("b", test + "x1")));
        first.Record.Status.Should().Be(RunStatus.Succeeded, first.Record.Error);

        // Overwrite shard 2's bytes in place (same length, different content), as bit rot or a stray writer would.
        var manifests = engine.Host.Services.Manifests;
        var a = first.Result!.Outputs["a"];
        var manifest = (await manifests.TryGetAsync(ArtifactKey.FromParts(a.Activity, "1", a.KeyHash)))!;
        var entry = manifest.Entries.Single(e => e.Path == "items/00002.bin");
        var original = Encoding.UTF8.GetBytes($"{test}: item 2 of 4\n");
        var corrupt = (byte[])original.Clone();
        corrupt[0] ^= 0x20;
        var blob = new BlobClient(engine.Connection.ConnectionString, engine.Host.Services.Options.ContainerName, entry.Blob);
        await blob.UploadAsync(new BinaryData(corrupt), overwrite: true);

        // Same producer (cached: its manifest still exists), a new consumer (not cached): it reads the corrupted shard.
        var second = await engine.RunAsync(engine.Request(produce, Consumer("b", test + "x2")));

        second.Record.Status.Should().Be(RunStatus.Failed);
        second.Result!.Outputs["a"].Cached.Should().BeTrue();
        var expected = entry.Sha256;
        var actual = Convert.ToHexStringLower(SHA256.HashData(corrupt));
        expected.Should().Be(Convert.ToHexStringLower(SHA256.HashData(original)));
        output.WriteLine(second.Record.Error);
        second.Record.Error.Should().Contain("step 'b'").And.Contain(entry.Blob).And.Contain(expected).And.Contain(actual).And.Contain("corrupted");
    }

    [Fact]
    public async Task Ten_experiments_submitted_at_once_on_two_worker_processes_all_complete_without_cross_talk()
    {
        var hub = EngineOptions.UniqueHubName("wften");
        var container = "t-" + Guid.NewGuid().ToString("N")[..20];
        var cache = Path.Combine(engine.CacheDirectory, hub);
        var client = await EngineClient.ConnectAsync(engine.Connection, WorkerProgram.KillTestOptions(hub, container, cache));
        var lines = new ConcurrentQueue<string>();
        await using var w1 = TestProcess.Start("worker", engine.Connection.ConnectionString, hub, container, cache, sharedLines: lines);
        await using var w2 = TestProcess.Start("worker", engine.Connection.ConnectionString, hub, container, cache, sharedLines: lines);
        try
        {
            const int runs = 10, items = 6;
            var tests = Enumerable.Range(0, runs).Select(i => $"ten{i}x{Guid.NewGuid().ToString("N")[..6]}").ToList();
            var watch = Stopwatch.StartNew();
            var ids = await Task.WhenAll(tests.Select(t => client.SubmitAsync(engine.Request(ShutdownTests.SlowStep("slow", items, t, delayMs: 150)))));
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var finals = await Task.WhenAll(ids.Select(id => client.WaitAsync(id, pollInterval: TimeSpan.FromMilliseconds(500), cancellationToken: timeout.Token)));
            output.WriteLine($"{runs} runs x {items} items on 2 worker processes: {watch.Elapsed.TotalSeconds:0.0}s");

            var manifests = new ManifestStore(client.Store);
            var keys = new HashSet<string>();
            for (var r = 0; r < runs; r++)
            {
                finals[r].Record.Status.Should().Be(RunStatus.Succeeded, finals[r].Record.Error);
                var result = finals[r].Result!.Outputs["slow"];
                keys.Add(result.KeyHash).Should().BeTrue("each experiment's inputs differ, so each has its own output");
                var manifest = (await manifests.TryGetAsync(ArtifactKey.FromParts(result.Activity, "1", result.KeyHash)))!;
                manifest.Entries.Should().HaveCount(items);
                foreach (var entry in manifest.Entries)
                {
                    await using var stream = await manifests.OpenVerifiedAsync(manifest, entry.Path);
                    using var reader = new StreamReader(stream);
                    (await reader.ReadToEndAsync()).Should().Be($"{tests[r]}: slow item {int.Parse(entry.Path[6..11])} of {items}\n",
                        "a run's outputs are derived from its own inputs only");
                }
            }

            var byWorker = new[] { w1, w2 }.Select(w => w.Lines.Count(l => l.StartsWith("start ten", StringComparison.Ordinal))).ToList();
            output.WriteLine($"items per worker process: {string.Join(", ", byWorker)}");
        }
        finally
        {
            await client.DeleteHubAsync();
        }
    }

    [Fact]
    public async Task Cancelling_a_run_stops_its_activities_on_the_workers_and_marks_it_cancelled()
    {
        var hub = EngineOptions.UniqueHubName("wfcancel");
        var container = "x-" + Guid.NewGuid().ToString("N")[..20];
        var cache = Path.Combine(engine.CacheDirectory, hub);
        var client = await EngineClient.ConnectAsync(engine.Connection, WorkerProgram.KillTestOptions(hub, container, cache));
        await using var worker = TestProcess.Start("worker", engine.Connection.ConnectionString, hub, container, cache);
        try
        {
            const int items = 40;
            var test = "cancel" + Guid.NewGuid().ToString("N")[..8];
            var runId = await client.SubmitAsync(engine.Request(ShutdownTests.SlowStep("slow", items, test, delayMs: 1000)));
            var watch = Stopwatch.StartNew();
            while (ShutdownTests.Done(worker.Lines, test).Count() < 4)
            {
                watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(90));
                await Task.Delay(200);
            }

            await client.CancelAsync(runId, "test cancels");
            var cancelledAt = worker.Lines.Count;
            // Activities already running finish (≤ 1 s); the rest are refused once the worker has seen the record (≤ 2 s).
            await Task.Delay(TimeSpan.FromSeconds(8));

            var view = (await client.GetAsync(runId))!;
            view.Record.Status.Should().Be(RunStatus.Cancelled, "wf status shows the run record's state");
            view.OrchestrationStatus.Should().Be(nameof(OrchestrationStatus.Terminated));
            var startsAfter = worker.Lines.Skip(cancelledAt).ToList();
            var lateStarts = ShutdownTests.Started(startsAfter.Skip(startsAfter.Count / 2), test).Count(); // the second half of the 8 s window
            var total = ShutdownTests.Started(worker.Lines, test).Count();
            output.WriteLine($"{total} of {items} items started before the worker stopped taking them; {lateStarts} started in the last 4 s");
            lateStarts.Should().Be(0, "workers skip activities of a cancelled run");
            total.Should().BeLessThan(items);
        }
        finally
        {
            await client.DeleteHubAsync();
        }
    }

    [Fact]
    public async Task Azurite_stopped_for_30_seconds_mid_run_the_worker_retries_and_the_run_completes_with_every_item()
    {
        await using var azurite = await OutageAzurite.StartAsync();
        var connection = azurite.Connection;
        var hub = EngineOptions.UniqueHubName("wfout");
        var container = "o-" + Guid.NewGuid().ToString("N")[..20];
        var cache = Path.Combine(engine.CacheDirectory, hub);
        var options = WorkerProgram.KillTestOptions(hub, container, cache);
        var client = await EngineClient.ConnectAsync(connection, options);
        await using var worker = TestProcess.Start("worker", connection.ConnectionString, hub, container, cache);
        try
        {
            const int items = 24;
            var test = "out" + Guid.NewGuid().ToString("N")[..8];
            var runId = await client.SubmitAsync(engine.Request(ShutdownTests.SlowStep("slow", items, test, delayMs: 500, maxAttempts: 6)));
            var watch = Stopwatch.StartNew();
            while (ShutdownTests.Done(worker.Lines, test).Count() < 4)
            {
                watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(90));
                await Task.Delay(200);
            }

            var (_, down) = await azurite.OutageAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"storage down for {down.TotalSeconds:0.0}s");

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var final = await client.WaitAsync(runId, pollInterval: TimeSpan.FromSeconds(1), cancellationToken: timeout.Token);
            final.Record.Status.Should().Be(RunStatus.Succeeded, final.Record.Error);
            var result = final.Result!.Outputs["slow"];
            var manifests = new ManifestStore(client.Store);
            var manifest = (await manifests.TryGetAsync(ArtifactKey.FromParts(result.Activity, "1", result.KeyHash)))!;
            manifest.Entries.Select(e => e.Path).Should().BeEquivalentTo(Enumerable.Range(0, items).Select(i => $"items/{i:D5}.bin"));
            foreach (var entry in manifest.Entries)
            {
                await using var stream = await manifests.OpenVerifiedAsync(manifest, entry.Path);
                using var reader = new StreamReader(stream);
                (await reader.ReadToEndAsync()).Should().Be($"{test}: slow item {int.Parse(entry.Path[6..11])} of {items}\n");
            }

            var starts = ShutdownTests.Started(worker.Lines, test).Count();
            output.WriteLine($"run took {final.Record.Duration?.TotalSeconds:0.0}s; {starts} item executions for {items} items " +
                             $"({starts - items} repeated); step attempts {final.Progress?.Steps["slow"].Attempts}, retries {final.Progress?.Steps["slow"].Retries}; " +
                             $"{worker.Lines.Count(l => l.StartsWith("redelivered ", StringComparison.Ordinal))} redelivered activities");
        }
        finally
        {
            await worker.DisposeAsync();
            await client.DeleteHubAsync();
        }
    }

    /// <summary>
    /// Temporal's heartbeat rule with real processes: a GPU job is running on one of two agent processes (15 s lease,
    /// the shortest Azure allows) when Azurite stops for 30 s. The agent cannot renew the lease, so it stops the job's
    /// work while the lease still certainly holds (well before anyone could take the job over); when storage is back,
    /// an agent claims the job, records why the first claim ended, resumes from the checkpoint, and the run succeeds.
    /// No two agents ever run the job at the same time.
    /// </summary>
    [Fact]
    public async Task Azurite_stopped_for_30_seconds_under_a_running_gpu_job_stops_its_work_before_the_lease_can_lapse_and_the_job_resumes_once()
    {
        await using var azurite = await OutageAzurite.StartAsync();
        var connection = azurite.Connection;
        var hub = EngineOptions.UniqueHubName("wfgout");
        var container = "g-" + Guid.NewGuid().ToString("N")[..20];
        var cache = Path.Combine(engine.CacheDirectory, hub);
        var client = await EngineClient.ConnectAsync(connection, WorkerProgram.KillTestOptions(hub, container, cache));
        var shortLease = new Dictionary<string, string> { [WorkerProgram.ShortLeaseVariable] = "1" };
        var lines = new ConcurrentQueue<string>();
        await using var worker = TestProcess.Start("worker", connection.ConnectionString, hub, container, cache);
        await using var agentA = TestProcess.Start("agent", connection.ConnectionString, hub, container, cache, shortLease, lines);
        await using var agentB = TestProcess.Start("agent", connection.ConnectionString, hub, container, cache, shortLease, lines);
        try
        {
            var test = "gout" + Guid.NewGuid().ToString("N")[..8];
            var runId = await client.SubmitAsync(engine.Request(ShutdownTests.SlowGpuStep("train", test, seconds: 12)));
            var job = new GpuJobRef(runId, "train.1");
            var watch = Stopwatch.StartNew();
            while (CheckpointedSteps(cache) < 2) // the job is running and has checkpointed (the agents share the cache folder)
            {
                watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(90), string.Join("\n", lines.TakeLast(20)));
                await Task.Delay(200);
            }

            var (downAt, down) = await azurite.OutageAsync(TimeSpan.FromSeconds(30));
            output.WriteLine($"storage down for {down.TotalSeconds:0.0}s");

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var final = await client.WaitAsync(runId, pollInterval: TimeSpan.FromSeconds(1), cancellationToken: timeout.Token);
            foreach (var line in lines.Where(l => l.StartsWith("job-", StringComparison.Ordinal) || l.Contains("lease", StringComparison.Ordinal)))
            {
                output.WriteLine(line);
            }

            final.Record.Status.Should().Be(RunStatus.Succeeded, final.Record.Error);

            // The work stopped before the lease could lapse: the last renewal was sent at most RenewEvery before the
            // outage began, so the lease held until at least downAt - RenewEvery + Duration.
            var stops = lines.Where(l => l.StartsWith($"job-stop {runId}.train ", StringComparison.Ordinal)).Select(l => l.Split(' ')).ToList();
            var firstStop = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(stops[0][4], System.Globalization.CultureInfo.InvariantCulture));
            var certainUntil = downAt - WorkerProgram.ShortLease.RenewEvery + WorkerProgram.ShortLease.Duration;
            output.WriteLine($"work stopped {(firstStop - downAt).TotalSeconds:0.0}s into the outage; the lease held for at least {(certainUntil - downAt).TotalSeconds:0.0}s");
            firstStop.Should().BeBefore(certainUntil, "the job's work stops while its lease still certainly holds");
            lines.Should().Contain(l => l.Contains("lease lost: not renewed", StringComparison.Ordinal));

            // Exactly one start after the outage, resuming from the checkpoint; starts and stops alternate (never two at once).
            var events = lines.Where(l => l.StartsWith($"job-start {runId}.train ", StringComparison.Ordinal) || l.StartsWith($"job-stop {runId}.train ", StringComparison.Ordinal)).ToList();
            events.Should().HaveCount(4);
            events.Select(e => e.Split(' ')[0]).Should().Equal("job-start", "job-stop", "job-start", "job-stop");
            int.Parse(events[2].Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(0, "the job resumes from its checkpoint");

            var status = (await new GpuJobStore(client.Store).GetStatusAsync(job))!;
            status.State.Should().Be(GpuJobStates.Succeeded);
            status.Claims.Should().HaveCount(2, "one claim before the outage, one after");
            // The agent that lost the lease records why when it claims the job again; another agent can only see it lapsed.
            status.Claims[0].Ended.Should().Match(e => e!.StartsWith(ClaimEndings.LeaseLost + ": not renewed", StringComparison.Ordinal)
                                                       || e.StartsWith(ClaimEndings.Lapsed, StringComparison.Ordinal));
            status.Claims[1].Ended.Should().Be(ClaimEndings.Succeeded);
        }
        finally
        {
            await client.DeleteHubAsync();
        }
    }

    private static int CheckpointedSteps(string cache)
    {
        var folder = Path.Combine(cache, "slow-gpu");
        return Directory.Exists(folder)
            ? Directory.GetFiles(folder, "*.step").Select(f => int.TryParse(File.ReadAllText(f), out var n) ? n : 0).DefaultIfEmpty(0).Max()
            : 0;
    }

    private static Workflows.Experiments.Templates.BoundStep Consumer(string id, string test) =>
        EngineFixture.Step(id, ConsumeType, 1, test, needs: ["a"], maxAttempts: 2);
}
