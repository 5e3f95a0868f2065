using System.Text;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

/// <summary>Runs that reach one cache key at once compute it once (the measure pass of a sweep's variants).</summary>
[Collection(EngineCollection.Name)]
public sealed class SingleFlightTests(EngineFixture engine)
{
    private static ArtifactKey NewKey() => ArtifactKey.Compute("test-single-flight", "1", new System.Text.Json.Nodes.JsonObject { ["id"] = Guid.NewGuid().ToString("N") });

    [Fact]
    public async Task Five_callers_at_once_compute_once_and_all_get_the_result()
    {
        var store = engine.Host.Services.Store;
        var key = NewKey();
        var computed = 0;
        async Task<string?> Cached() =>
            await store.ExistsAsync(key.Prefix + "out") ? "output" : null;
        async Task<string> Compute()
        {
            Interlocked.Increment(ref computed);
            await Task.Delay(1500);
            using var body = new MemoryStream(Encoding.UTF8.GetBytes("x"));
            await store.PutAsync(key.Prefix + "out", body);
            return "output";
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 5).Select(_ => Task.Run(() => SingleFlight.RunAsync(store, key, Cached, Compute))));

        results.Should().OnlyContain(r => r == "output");
        computed.Should().Be(1, "the others waited for the first one's output");
        (await store.ExistsAsync(SingleFlight.ClaimName(key))).Should().BeTrue();
    }

    [Fact]
    public async Task When_the_holder_fails_a_waiter_takes_the_work_over()
    {
        var store = engine.Host.Services.Store;
        var key = NewKey();
        var attempts = 0;
        async Task<string?> Cached() => await store.ExistsAsync(key.Prefix + "out") ? "output" : null;
        async Task<string> Compute()
        {
            if (Interlocked.Increment(ref attempts) == 1)
            {
                await Task.Delay(500);
                throw new IOException("the first holder broke");
            }

            using var body = new MemoryStream(Encoding.UTF8.GetBytes("x"));
            await store.PutAsync(key.Prefix + "out", body);
            return "output";
        }

        var first = Task.Run(() => SingleFlight.RunAsync(store, key, Cached, Compute));
        await Task.Delay(200);
        var second = Task.Run(() => SingleFlight.RunAsync(store, key, Cached, Compute));

        await first.Invoking(async t => await t).Should().ThrowAsync<IOException>();
        (await second).Should().Be("output");
        attempts.Should().Be(2);
    }
}
