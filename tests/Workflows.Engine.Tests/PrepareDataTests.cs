using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

[Collection(EngineCollection.Name)]
public sealed class PrepareDataTests(EngineFixture engine)
{
    [Fact]
    public async Task Prepare_data_on_the_shipped_sample_publishes_verified_shards_that_training_can_read_and_reruns_from_cache()
    {
        var file = Path.Combine(engine.RepositoryRoot, "experiments", "smoke.yaml");
        var request = EngineClient.Prepare(file, Path.Combine(engine.RepositoryRoot, "workflows"), "test");
        request = request with { Workflow = request.Workflow with { Steps = [request.Workflow.Steps.Single(s => s.Type == "prepare-data")] } };

        var first = await engine.RunAsync(request);

        first.Record.Status.Should().Be(RunStatus.Succeeded, first.Record.Error);
        var output = first.Result!.Outputs["prepare-data"];
        output.Cached.Should().BeFalse();
        var manifest = (await engine.Host.Services.Manifests.TryGetAsync(ArtifactKey.FromParts(PrepareDataStep.Type, PrepareDataStep.Version, output.KeyHash)))!;
        var shards = manifest.Entries.Where(e => e.Path.EndsWith(".parquet", StringComparison.Ordinal)).Select(e => e.Path).ToList();
        shards.Should().Equal(Enumerable.Range(0, 4).Select(i => $"data/shard-{i:D5}.parquet"), "smoke.yaml asks for 4 shards");
        manifest.Find("data/manifest.json").Should().NotBeNull();
        manifest.Find("data/stats.json").Should().NotBeNull();

        var folder = await PrepareDataStep.DownloadDataAsync(engine.Host.Services, output);
        using (var source = new Workflows.Training.Data.PackedShardSequenceSource(folder))
        {
            source.Context.Should().Be(1024);
            source.Next().Should().HaveCount(1024 + 1);
        }

        var second = await engine.RunAsync(request);
        second.Record.Status.Should().Be(RunStatus.Succeeded, second.Record.Error);
        second.Result!.Outputs["prepare-data"].Cached.Should().BeTrue();
        second.Result.Outputs["prepare-data"].ContentHash.Should().Be(output.ContentHash);
    }
}
