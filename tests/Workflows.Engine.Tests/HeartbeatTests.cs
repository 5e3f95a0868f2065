using Workflows.Engine.Hosting;

namespace Workflows.Engine.Tests;

public sealed class HeartbeatTests
{
    [Fact]
    public async Task The_heartbeat_file_is_rewritten_while_healthy_left_to_age_while_unhealthy_and_deleted_on_stop()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wf-hb-" + Guid.NewGuid().ToString("N")[..8]);
        var path = Path.Combine(dir, "wf", "heartbeat");
        var healthy = true;
        var failedChecks = 0;
        try
        {
            // No fixed sleeps: the test waits for the heartbeat's own events (beats written, health checks failed).
            var heartbeat = Heartbeat.Start(path, _ =>
            {
                if (healthy)
                {
                    return Task.FromResult(true);
                }

                Interlocked.Increment(ref failedChecks);
                throw new IOException("storage down");
            }, TimeSpan.FromMilliseconds(200))!;
            await WaitUntil(() => heartbeat.Beats >= 2);
            File.Exists(path).Should().BeTrue();
            DateTimeOffset.Parse(await File.ReadAllTextAsync(path), System.Globalization.CultureInfo.InvariantCulture)
                .Should().BeCloseTo(DateTimeOffset.UtcNow, TimeSpan.FromSeconds(5));

            healthy = false;
            await WaitUntil(() => Volatile.Read(ref failedChecks) >= 1);
            var beats = heartbeat.Beats;
            var written = File.GetLastWriteTimeUtc(path);
            await WaitUntil(() => Volatile.Read(ref failedChecks) >= 4);
            heartbeat.Beats.Should().Be(beats, "an unhealthy process must let the file age so the probes fail");
            File.GetLastWriteTimeUtc(path).Should().Be(written);

            healthy = true;
            await WaitUntil(() => heartbeat.Beats > beats);
            await heartbeat.DisposeAsync();
            File.Exists(path).Should().BeFalse();
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void No_variable_no_heartbeat() => Heartbeat.Start(null, _ => Task.FromResult(true)).Should().BeNull();

    [Fact]
    public void The_interval_meets_the_manifests_contract()
    {
        // infra/k8s: "touches the file at least every 15 s"; readiness wants it younger than 1 minute.
        Heartbeat.DefaultInterval.Should().BeLessThanOrEqualTo(TimeSpan.FromSeconds(15));
        var worker = File.ReadAllText(Path.Combine(ConfigurationTests.FindRepositoryRoot(), "infra", "k8s", "base", "worker-deployment.yaml"));
        worker.Should().Contain("WF_HEARTBEAT_FILE").And.Contain("-mmin -1");
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
            await Task.Delay(50);
        }
    }
}
