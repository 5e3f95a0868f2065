using Workflows.Artifacts.Runs;

namespace Workflows.Artifacts.Tests;

[Collection(AzuriteCollection.Name)]
public class SweepRecordStoreTests(AzuriteFixture azurite)
{
    private static SweepRecord NewSweep(string id, params string[] hashes) => new()
    {
        SweepId = id,
        Name = "lr-sweep",
        File = "experiments/lr-sweep.yaml",
        CodeCommit = "4aed3a0",
        SubmittedAt = new DateTimeOffset(2026, 12, 1, 10, 0, 0, TimeSpan.Zero),
        Variants = [.. hashes.Select((h, i) => new SweepVariantRecord
        {
            Index = i + 1,
            Name = $"lr-sweep-v{i + 1}",
            ExperimentHash = h,
            RunId = $"{id}-{i + 1:00}",
            Values = new Dictionary<string, string> { ["training.lr"] = $"v{i + 1}" },
        })],
    };

    [Fact]
    public async Task A_sweep_is_stored_once_a_redelivery_finds_it_and_other_variants_under_its_id_are_refused()
    {
        var sweeps = new SweepRecordStore(await azurite.NewStoreAsync());
        var first = await sweeps.CreateAsync(NewSweep("s1", "aa", "bb"), "name: lr-sweep\nmatrix: {}\n");

        var again = await sweeps.CreateAsync(NewSweep("s1", "aa", "bb") with { SubmittedAt = DateTimeOffset.UtcNow }, "name: lr-sweep\nmatrix: {}\n");
        again.Record.SubmittedAt.Should().Be(first.Record.SubmittedAt, "the sweep already recorded is returned as it is");
        var other = () => sweeps.CreateAsync(NewSweep("s1", "aa", "cc"), "name: lr-sweep\n");
        await other.Should().ThrowAsync<InvalidOperationException>().WithMessage("Sweep 's1' already exists with other variants.");

        var read = (await sweeps.GetAsync("s1"))!.Record;
        read.Variants.Select(v => (v.Name, v.RunId, v.DescribeValues())).Should().Equal(("lr-sweep-v1", "s1-01", "training.lr = v1"), ("lr-sweep-v2", "s1-02", "training.lr = v2"));
        (await sweeps.GetAsync("nope")).Should().BeNull();
    }

    [Fact]
    public async Task Concurrent_updates_of_variants_do_not_lose_each_other()
    {
        var sweeps = new SweepRecordStore(await azurite.NewStoreAsync());
        await sweeps.CreateAsync(NewSweep("s2", "aa", "bb", "cc"), "name: lr-sweep\n");

        await Task.WhenAll(Enumerable.Range(1, 3).Select(i => Task.Run(() => sweeps.UpdateAsync("s2", r => r with
        {
            Variants = [.. r.Variants.Select(v => v.Index == i ? v with { SubmitError = $"refused {i}" } : v)],
        }))));

        (await sweeps.GetAsync("s2"))!.Record.Variants.Select(v => v.SubmitError).Should().Equal("refused 1", "refused 2", "refused 3");
    }
}
