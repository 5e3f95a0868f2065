using System.Text;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Tests;

[Collection(AzuriteCollection.Name)]
public class ManifestStoreTests(AzuriteFixture azurite)
{
    private static MemoryStream Text(string s) => new(Encoding.UTF8.GetBytes(s));

    [Fact]
    public async Task Eight_concurrent_writers_of_one_manifest_have_exactly_one_winner()
    {
        var manifests = new ManifestStore(await azurite.NewStoreAsync());
        var key = ArtifactKey.Compute("tokenize", "1", """{"shard": 3}""");
        var allWritten = new Barrier(8);
        var writers = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            var writer = manifests.BeginWrite(key, producer: $"worker-{i}");
            // Different bytes per writer, as a non-deterministic duplicate delivery would produce.
            await writer.PutAsync("shards/00000.bin", Text($"shard zero from writer {i}"));
            await writer.PutAsync("stats.json", Text($$"""{"writer": {{i}}}"""));
            allWritten.SignalAndWait(TimeSpan.FromSeconds(30)); // publish all at once
            return (writer, result: await writer.PublishAsync());
        })).ToList();
        var outcomes = await Task.WhenAll(writers);

        outcomes.Count(o => o.result.Won).Should().Be(1);
        outcomes.Count(o => o.result.Outcome == PublishOutcome.Lost).Should().Be(7);
        var winner = outcomes.Single(o => o.result.Won);
        outcomes.Select(o => o.result.Manifest.AttemptId).Should().AllBe(winner.writer.AttemptId, "every loser is handed the winner's manifest");

        var published = await manifests.TryGetAsync(key);
        published!.AttemptId.Should().Be(winner.writer.AttemptId);
        published.Producer.Should().Be(winner.writer.Producer);
        published.Entries.Select(e => e.Path).Should().Equal("shards/00000.bin", "stats.json");
        await using (var s = await manifests.OpenVerifiedAsync(published, "shards/00000.bin"))
        {
            (await new StreamReader(s).ReadToEndAsync()).Should().Be($"shard zero from {winner.writer.Producer.Replace("worker-", "writer ", StringComparison.Ordinal)}");
        }
        // Losers cleaned up after themselves: only the winner's attempt folder and the manifest remain.
        var blobs = await manifests.Store.ListAsync(key.Prefix).Select(b => b.Name).ToListAsync();
        blobs.Should().BeEquivalentTo(new[] { key.ManifestName, published.Entries[0].Blob, published.Entries[1].Blob });
    }

    [Fact]
    public async Task The_manifest_marks_completion_and_is_the_cache_check()
    {
        var manifests = new ManifestStore(await azurite.NewStoreAsync());
        var key = ArtifactKey.Compute("pack", "1", """{"len": 8}""");
        (await manifests.ExistsAsync(key)).Should().BeFalse();
        (await manifests.TryGetAsync(key)).Should().BeNull();

        var writer = manifests.BeginWrite(key, "test");
        await writer.PutAsync("a.bin", Text("aaa"));
        (await manifests.ExistsAsync(key)).Should().BeFalse("blobs without a manifest are not a finished output");
        var result = await writer.PublishAsync(new Dictionary<string, string> { ["tokens"] = "3" });
        result.Won.Should().BeTrue();
        (await manifests.ExistsAsync(key)).Should().BeTrue();
        var read = await manifests.TryGetAsync(key);
        read!.ContentHash.Should().Be(result.Manifest.ContentHash);
        read.Properties!["tokens"].Should().Be("3");
        read.Entries.Single().Blob.Should().StartWith(key.Prefix + writer.AttemptId + "/");
    }

    [Fact]
    public async Task Equal_outputs_have_equal_content_hashes_whoever_wrote_them()
    {
        var manifests = new ManifestStore(await azurite.NewStoreAsync());
        async Task<Manifest> Write(string activity)
        {
            var w = manifests.BeginWrite(ArtifactKey.Compute(activity, "1", "{}"), activity);
            await w.PutAsync("x", Text("same bytes"));
            return (await w.PublishAsync()).Manifest;
        }
        var m1 = await Write("one");
        var m2 = await Write("two");
        m1.ContentHash.Should().Be(m2.ContentHash);
        m1.AttemptId.Should().NotBe(m2.AttemptId);
    }

    [Fact]
    public async Task A_manifest_whose_blobs_are_missing_is_not_published()
    {
        var manifests = new ManifestStore(await azurite.NewStoreAsync());
        var key = ArtifactKey.Compute("x", "1", "{}");
        var manifest = new Manifest
        {
            Activity = "x", ActivityVersion = "1", KeyHash = key.Hash, AttemptId = "attempt-1", Producer = "t",
            CreatedAt = DateTimeOffset.UtcNow, Entries = [new("a", key.Prefix + "attempt-1/a", 3, new string('0', 64))],
        };
        var act = () => manifests.TryPublishAsync(manifest);
        await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("*missing*");
        (await manifests.ExistsAsync(key)).Should().BeFalse();
    }

    [Fact]
    public async Task Consuming_a_corrupted_entry_fails_with_the_blob_and_both_hashes()
    {
        var manifests = new ManifestStore(await azurite.NewStoreAsync());
        var key = ArtifactKey.Compute("train-data", "1", "{}");
        var writer = manifests.BeginWrite(key, "t");
        var entry = await writer.PutAsync("shards/1.bin", Text("good shard bytes"));
        var manifest = (await writer.PublishAsync()).Manifest;

        // Overwrite the shard behind the manifest's back (through the store: even its metadata hash is "right").
        await manifests.Store.PutAsync(entry.Blob, Text("evil shard bytes"));

        await using var stream = await manifests.OpenVerifiedAsync(manifest, "shards/1.bin");
        var read = () => new StreamReader(stream).ReadToEndAsync();
        var error = (await read.Should().ThrowAsync<ArtifactCorruptedException>()).Which;
        error.BlobName.Should().Be(entry.Blob);
        error.ExpectedSha256.Should().Be(entry.Sha256);
        error.ActualSha256.Should().Be(Sha256Hex.Of("evil shard bytes"));

        var file = Path.Combine(Path.GetTempPath(), "wf-corrupt-" + Guid.NewGuid().ToString("N"));
        var download = () => manifests.DownloadVerifiedToFileAsync(manifest, "shards/1.bin", file);
        await download.Should().ThrowAsync<ArtifactCorruptedException>();
        File.Exists(file).Should().BeFalse("an unverified download must not appear under the final name");
        Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(file) + "*").Should().BeEmpty();
    }

    [Fact]
    public async Task Verified_download_to_a_file_succeeds_for_intact_blobs()
    {
        var manifests = new ManifestStore(await azurite.NewStoreAsync());
        var writer = manifests.BeginWrite(ArtifactKey.Compute("y", "1", "{}"), "t");
        await writer.PutAsync("data/part.bin", Text("intact"));
        var manifest = (await writer.PublishAsync()).Manifest;
        var file = Path.Combine(Path.GetTempPath(), "wf-intact-" + Guid.NewGuid().ToString("N"));
        try
        {
            await manifests.DownloadVerifiedToFileAsync(manifest, "data/part.bin", file);
            (await File.ReadAllTextAsync(file)).Should().Be("intact");
        }
        finally
        {
            File.Delete(file);
        }
    }
}
