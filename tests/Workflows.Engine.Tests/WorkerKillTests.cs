using System.Diagnostics;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Xunit.Abstractions;

namespace Workflows.Engine.Tests;

[Collection(EngineCollection.Name)]
public sealed class WorkerKillTests(EngineFixture engine, ITestOutputHelper output)
{
    [Fact]
    public async Task A_worker_process_killed_with_SIGKILL_mid_run_is_replaced_and_the_run_completes_with_identical_outputs()
    {
        var hub = EngineOptions.UniqueHubName("wfkill");
        var container = "k-" + Guid.NewGuid().ToString("N")[..20];
        var cache = Path.Combine(engine.CacheDirectory, hub);
        var test = "kill" + Guid.NewGuid().ToString("N")[..8];
        const int items = 32;
        var client = await EngineClient.ConnectAsync(engine.Connection, WorkerProgram.KillTestOptions(hub, container, cache));
        var first = StartWorker(engine.Connection.ConnectionString, hub, container, cache);
        Process? second = null;
        try
        {
            var request = engine.Request(EngineFixture.Step("slow", "slow-items", items, test, maxAttempts: 3));
            var runId = await client.SubmitAsync(request);
            var watch = Stopwatch.StartNew();
            RunView? view;
            do
            {
                await Task.Delay(200);
                view = await client.GetAsync(runId);
                watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(90), "the first worker should make progress");
            }
            while ((view?.Progress?.Steps["slow"].Done ?? 0) < 4);

            var doneAtKill = view!.Progress!.Steps["slow"].Done;
            first.Kill(); // SIGKILL: no shutdown, leases and dequeued messages are abandoned as they are
            await first.WaitForExitAsync();
            second = StartWorker(engine.Connection.ConnectionString, hub, container, cache);

            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var final = await client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(500), cancellationToken: timeout.Token);
            final.Record.Status.Should().Be(RunStatus.Succeeded, final.Record.Error);

            var result = final.Result!.Outputs["slow"];
            var store = client.Store;
            var manifests = new ManifestStore(store);
            var manifest = (await manifests.TryGetAsync(ArtifactKey.FromParts(result.Activity, "1", result.KeyHash)))!;
            manifest.Entries.Select(e => e.Path).Should().BeEquivalentTo(Enumerable.Range(0, items).Select(i => $"items/{i:D5}.bin"));
            foreach (var entry in manifest.Entries)
            {
                await using var stream = await manifests.OpenVerifiedAsync(manifest, entry.Path);
                using var reader = new StreamReader(stream);
                (await reader.ReadToEndAsync()).Should().Be($"{test}: slow item {int.Parse(entry.Path[6..11])} of {items}\n");
            }

            // Both workers print a line when an item starts: the surplus over one per item is the re-executed work
            // (items in flight when the first worker died, redelivered after the work-item visibility timeout).
            var starts = Started.Count(line => line.StartsWith($"start {test} ", StringComparison.Ordinal));
            // The second worker also reports, from the engine's wf.activity.executions metric, every activity DTFx
            // delivered again (DeliveryAttempt > 1): the messages the killed worker had dequeued.
            var redelivered = Started.Count(line => line.StartsWith("redelivered ", StringComparison.Ordinal));
            output.WriteLine($"killed after {doneAtKill}/{items} items; {starts - items} item execution(s) were repeated; " +
                             $"{redelivered} activit{(redelivered == 1 ? "y was" : "ies were")} redelivered; run took {final.Record.Duration?.TotalSeconds:0.0}s");
            starts.Should().BeGreaterThanOrEqualTo(items); // usually > items; == only if the kill fell between two items
            redelivered.Should().BeGreaterThanOrEqualTo(starts - items, "every repeated item execution is a redelivered message");
        }
        finally
        {
            foreach (var p in new[] { first, second })
            {
                if (p is { HasExited: false })
                {
                    p.Kill();
                    await p.WaitForExitAsync();
                }

                p?.Dispose();
            }

            await client.DeleteHubAsync();
        }
    }

    private System.Collections.Concurrent.ConcurrentQueue<string> Started { get; } = new();

    private Process StartWorker(string connectionString, string hub, string container, string cache)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(typeof(WorkerProgram).Assembly.Location);
        foreach (var a in new[] { "worker", hub, container, cache })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment[WorkerProgram.ConnectionVariable] = connectionString;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                Started.Enqueue(line);
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
