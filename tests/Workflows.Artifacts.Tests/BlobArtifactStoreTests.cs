using System.Security.Cryptography;
using System.Text;
using Azure.Storage.Blobs;
using Workflows.Artifacts.Benchmarks;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Tests;

[Collection(AzuriteCollection.Name)]
public class BlobArtifactStoreTests(AzuriteFixture azurite)
{
    private static MemoryStream Text(string s) => new(Encoding.UTF8.GetBytes(s));

    private static string Sha(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    [Fact]
    public async Task A_50_MB_stream_round_trips_with_the_same_sha256()
    {
        const long size = 50L * 1024 * 1024 + 12345; // not a multiple of the block size: exercises the short last block
        var store = await azurite.NewStoreAsync(new BlobArtifactStoreOptions { BlockSizeBytes = 4 * 1024 * 1024, MaxConcurrency = 4 });
        var expected = Convert.ToHexStringLower(await SHA256.HashDataAsync(new ArtifactThroughputBenchmark.GeneratedStream(size, 7)));

        // Warm the buffer pool with a small multi-block upload, so the measured upload shows its steady state.
        await store.PutAsync("big/warm-up.bin", new ArtifactThroughputBenchmark.GeneratedStream(20L * 1024 * 1024, 1));
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var stored = await store.PutAsync("big/blob.bin", new ArtifactThroughputBenchmark.GeneratedStream(size, 7));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;

        stored.Length.Should().Be(size);
        stored.Sha256.Should().Be(expected);
        // Streaming, not buffering: pooled blocks are reused, so the upload allocates far less than the blob.
        allocated.Should().BeLessThan(size / 4, "an upload must not buffer the whole stream");

        var props = await store.GetPropertiesAsync("big/blob.bin");
        props!.Length.Should().Be(size);
        props.Sha256.Should().Be(expected);

        // Independent check of the bytes: hash the plain streaming download with SHA256 directly.
        await using (var plain = await store.OpenReadAsync("big/blob.bin"))
        {
            Convert.ToHexStringLower(await SHA256.HashDataAsync(plain)).Should().Be(expected);
        }
        var downloaded = await store.DownloadToAsync("big/blob.bin", Stream.Null, expected);
        downloaded.Length.Should().Be(size);
        await using var verified = await store.OpenVerifiedAsync("big/blob.bin", expected, size);
        await verified.CopyToAsync(Stream.Null);
    }

    [Fact]
    public async Task Small_and_empty_blobs_round_trip()
    {
        var store = await azurite.NewStoreAsync();
        (await store.PutAsync("s/hello.txt", Text("hello"))).Sha256.Should().Be(Sha("hello"));
        var empty = await store.PutAsync("s/empty", Stream.Null);
        empty.Length.Should().Be(0);
        empty.Sha256.Should().Be(Sha(""));
        await using var r = await store.OpenReadAsync("s/hello.txt");
        (await new StreamReader(r).ReadToEndAsync()).Should().Be("hello");
    }

    [Fact]
    public async Task Exists_list_properties_and_delete()
    {
        var store = await azurite.NewStoreAsync();
        foreach (var name in new[] { "p/a/1", "p/a/2", "p/b/1", "q/1" })
        {
            await store.PutAsync(name, Text(name));
        }
        (await store.ExistsAsync("p/a/1")).Should().BeTrue();
        (await store.ExistsAsync("p/a/3")).Should().BeFalse();
        (await store.GetPropertiesAsync("p/a/3")).Should().BeNull();

        var underA = await store.ListAsync("p/a/").ToListAsync();
        underA.Select(b => b.Name).Should().Equal("p/a/1", "p/a/2");
        underA[1].Sha256.Should().Be(Sha("p/a/2"));
        underA[1].Length.Should().Be(5);
        (await store.ListAsync("p/").ToListAsync()).Should().HaveCount(3);
        (await store.ListAsync("").ToListAsync()).Should().HaveCount(4);

        (await store.DeleteAsync("p/a/1")).Should().BeTrue();
        (await store.DeleteAsync("p/a/1")).Should().BeFalse();
        (await store.ExistsAsync("p/a/1")).Should().BeFalse();
        var act = () => store.OpenReadAsync("p/a/1");
        await act.Should().ThrowAsync<ArtifactNotFoundException>().WithMessage("*p/a/1*");
    }

    [Fact]
    public async Task The_store_refuses_names_that_escape_their_prefix()
    {
        var store = await azurite.NewStoreAsync();
        foreach (var bad in new[] { "../x", "/abs", "a/../../b", "a//b", "a\\b" })
        {
            var put = () => store.PutAsync(bad, Text("x"));
            await put.Should().ThrowAsync<ArgumentException>();
            var get = () => store.OpenReadAsync(bad);
            await get.Should().ThrowAsync<ArgumentException>();
        }
        var list = async () => await store.ListAsync("../").ToListAsync();
        await list.Should().ThrowAsync<ArgumentException>();
        (await store.ListAsync("").ToListAsync()).Should().BeEmpty("nothing may have been written");
    }

    [Fact]
    public async Task Conditional_writes_honour_if_none_match_and_if_match()
    {
        var store = await azurite.NewStoreAsync();
        var first = await store.TryPutAsync("c/x", Text("one"), WriteCondition.IfNotExists);
        first.Should().NotBeNull();
        (await store.TryPutAsync("c/x", Text("two"), WriteCondition.IfNotExists)).Should().BeNull();

        var updated = await store.TryPutAsync("c/x", Text("three"), WriteCondition.IfMatch(first!.ETag));
        updated.Should().NotBeNull();
        (await store.TryPutAsync("c/x", Text("four"), WriteCondition.IfMatch(first.ETag))).Should().BeNull("the ETag is stale");
        (await store.GetPropertiesAsync("c/x"))!.Sha256.Should().Be(Sha("three"));
    }

    [Fact]
    public async Task Concurrent_multi_block_creates_have_exactly_one_winner()
    {
        var store = await azurite.NewStoreAsync(new BlobArtifactStoreOptions { BlockSizeBytes = 1024 * 1024, MaxConcurrency = 2 });
        var start = new TaskCompletionSource();
        var writers = Enumerable.Range(1, 4).Select(async i =>
        {
            await start.Task;
            return await store.TryPutAsync("race/big.bin", new ArtifactThroughputBenchmark.GeneratedStream(3 * 1024 * 1024 + i, (ulong)i), WriteCondition.IfNotExists);
        }).ToList();
        start.SetResult();
        var results = await Task.WhenAll(writers);
        var winners = results.Where(r => r is not null).ToList();
        winners.Should().ContainSingle();
        var props = await store.GetPropertiesAsync("race/big.bin");
        props!.Sha256.Should().Be(winners[0]!.Sha256);
        props.Length.Should().Be(winners[0]!.Length);
        await using var verified = await store.OpenVerifiedAsync("race/big.bin", winners[0]!.Sha256, winners[0]!.Length);
        await verified.CopyToAsync(Stream.Null);
    }

    [Fact]
    public async Task A_corrupted_blob_is_detected_by_hash_when_read()
    {
        var store = await azurite.NewStoreAsync();
        var stored = await store.PutAsync("c/data.bin", Text("the original content"));
        // Tamper behind the store's back, same length, different bytes (bit rot / a foreign writer).
        var raw = new BlobClient(azurite.Connection.ConnectionString, store.Container.Name, "c/data.bin");
        await raw.UploadAsync(new BinaryData(Encoding.UTF8.GetBytes("the 0riginal content")), overwrite: true);

        await using var stream = await store.OpenVerifiedAsync("c/data.bin", stored.Sha256, stored.Length);
        var read = () => stream.CopyToAsync(Stream.Null);
        var error = (await read.Should().ThrowAsync<ArtifactCorruptedException>()).Which;
        error.BlobName.Should().Be("c/data.bin");
        error.ExpectedSha256.Should().Be(stored.Sha256);
        error.ActualSha256.Should().Be(Sha("the 0riginal content"));
        error.Message.Should().Contain("c/data.bin").And.Contain(stored.Sha256).And.Contain(error.ActualSha256);

        var download = () => store.DownloadToAsync("c/data.bin", Stream.Null, stored.Sha256);
        await download.Should().ThrowAsync<ArtifactCorruptedException>();
    }

    [Fact]
    public async Task A_truncated_or_extended_blob_is_detected()
    {
        var store = await azurite.NewStoreAsync();
        var stored = await store.PutAsync("c/len.bin", Text("0123456789"));
        await store.PutAsync("c/len.bin", Text("0123456789-and-more"));
        await using var stream = await store.OpenVerifiedAsync("c/len.bin", stored.Sha256, stored.Length);
        var read = () => stream.CopyToAsync(Stream.Null);
        await read.Should().ThrowAsync<ArtifactCorruptedException>();
    }

    [Fact]
    public async Task Leases_are_exclusive_until_released()
    {
        var store = await azurite.NewStoreAsync();
        var first = await store.TryAcquireLeaseAsync("locks/job-1", TimeSpan.FromSeconds(15));
        first.Should().NotBeNull();
        (await store.TryAcquireLeaseAsync("locks/job-1", TimeSpan.FromSeconds(15))).Should().BeNull();
        await first!.RenewAsync();
        await first.DisposeAsync();
        await using var second = await store.TryAcquireLeaseAsync("locks/job-1", TimeSpan.FromSeconds(15));
        second.Should().NotBeNull();
        second!.LeaseId.Should().NotBe(first.LeaseId);
    }
}
