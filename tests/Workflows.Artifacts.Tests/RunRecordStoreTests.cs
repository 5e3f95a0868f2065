using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Tests;

[Collection(AzuriteCollection.Name)]
public class RunRecordStoreTests(AzuriteFixture azurite)
{
    private static RunRecord NewRun(string id) => new()
    {
        RunId = id,
        ExperimentName = "smoke",
        ExperimentHash = new string('c', 64),
        CodeCommit = "4aed3a0",
        EngineInstanceId = "wf-" + id,
        SubmittedAt = new DateTimeOffset(2026, 3, 1, 14, 25, 1, TimeSpan.Zero),
    };

    [Fact]
    public async Task A_run_is_stored_as_json_next_to_the_experiment_as_submitted()
    {
        var store = await azurite.NewStoreAsync();
        var runs = new RunRecordStore(store);
        const string yaml = "name: smoke\n# comments and formatting kept as submitted\nsteps: [prep]\n";
        var id = RunRecord.NewRunId();
        await runs.CreateAsync(NewRun(id), yaml);

        (await store.ExistsAsync($"runs/{id}/run.json")).Should().BeTrue();
        (await runs.ReadExperimentYamlAsync(id)).Should().Be(yaml);
        var read = (await runs.GetAsync(id))!.Record;
        read.Should().BeEquivalentTo(NewRun(id) with { ExperimentSha256 = Sha256Hex.Of(yaml) }, "the run records the SHA-256 of the file it was submitted with");
        read.Status.Should().Be(RunStatus.Submitted);

        await using var raw = await store.OpenReadAsync($"runs/{id}/run.json");
        var json = await new StreamReader(raw).ReadToEndAsync();
        json.Should().Contain("\"status\": \"Submitted\"").And.Contain("\"codeCommit\": \"4aed3a0\"");
    }

    [Fact]
    public async Task A_changed_experiment_file_or_a_damaged_run_record_is_refused_naming_the_blob_and_both_hashes()
    {
        var store = await azurite.NewStoreAsync();
        var runs = new RunRecordStore(store);
        var id = RunRecord.NewRunId();
        const string yaml = "name: smoke\n";
        await runs.CreateAsync(NewRun(id), yaml);

        // Rewritten through the store (so the blob's own hash is consistent), but not the bytes the run recorded.
        await store.PutAsync(RunRecordStore.ExperimentName(id), new MemoryStream("name: other\n"u8.ToArray()));
        var changed = (await FluentActions.Awaiting(() => runs.ReadExperimentYamlAsync(id)).Should().ThrowAsync<ArtifactCorruptedException>()).Which;
        changed.Message.Should().Contain(RunRecordStore.ExperimentName(id)).And.Contain(Sha256Hex.Of(yaml)).And.Contain(Sha256Hex.Of("name: other\n"));

        // Bytes changed behind the store's back (bit rot, a stray writer): they no longer match the hash recorded with them.
        var blob = store.Container.GetBlobClient(RunRecordStore.RecordName(id));
        var original = (await blob.DownloadContentAsync()).Value;
        var damaged = original.Content.ToString().Replace("Submitted", "Succeeded", StringComparison.Ordinal);
        await blob.UploadAsync(new BinaryData(System.Text.Encoding.UTF8.GetBytes(damaged)), new Azure.Storage.Blobs.Models.BlobUploadOptions { Metadata = original.Details.Metadata });
        var rotten = (await FluentActions.Awaiting(() => runs.GetAsync(id)).Should().ThrowAsync<ArtifactCorruptedException>()).Which;
        rotten.Message.Should().Contain(RunRecordStore.RecordName(id)).And.Contain(original.Details.Metadata["sha256"]);
    }

    [Fact]
    public async Task Concurrent_updates_do_not_lose_each_other()
    {
        var runs = new RunRecordStore(await azurite.NewStoreAsync());
        await runs.CreateAsync(NewRun("r1"), "name: smoke\n");
        await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Task.Run(() => runs.UpdateAsync("r1", r => r with
        {
            Status = RunStatus.Running,
            Steps = [.. r.Steps, new StepRecord { Step = "prep", Shard = i.ToString(System.Globalization.CultureInfo.InvariantCulture), Status = "Succeeded" }],
        }))));
        var record = (await runs.GetAsync("r1"))!.Record;
        record.Status.Should().Be(RunStatus.Running);
        record.Steps.Select(s => s.Shard).Should().BeEquivalentTo(["0", "1", "2", "3", "4", "5"]);
    }

    [Fact]
    public async Task Run_ids_are_unique_and_validated()
    {
        var runs = new RunRecordStore(await azurite.NewStoreAsync());
        await runs.CreateAsync(NewRun("r2"), "a: 1\n");
        var again = () => runs.CreateAsync(NewRun("r2"), "a: 2\n");
        await again.Should().ThrowAsync<InvalidOperationException>().WithMessage("*already exists*");
        var escape = () => runs.CreateAsync(NewRun("../cas"), "a: 1\n");
        await escape.Should().ThrowAsync<ArgumentException>();
        var nested = () => runs.GetAsync("a/b");
        await nested.Should().ThrowAsync<ArgumentException>();
    }

    [Fact]
    public async Task Runs_are_listed_with_state_and_timings()
    {
        var runs = new RunRecordStore(await azurite.NewStoreAsync());
        await runs.CreateAsync(NewRun("20260301-000001-aaaaaa"), "x: 1\n");
        await runs.CreateAsync(NewRun("20260301-000002-bbbbbb"), "x: 2\n");
        var start = DateTimeOffset.UtcNow;
        await runs.UpdateAsync("20260301-000002-bbbbbb", r => r with { Status = RunStatus.Succeeded, StartedAt = start, CompletedAt = start.AddMinutes(3) });

        var listed = await runs.ListAsync().ToListAsync();
        listed.Select(r => r.RunId).Should().Equal("20260301-000001-aaaaaa", "20260301-000002-bbbbbb");
        listed[1].Duration.Should().Be(TimeSpan.FromMinutes(3));
        listed[1].IsFinished.Should().BeTrue();
        (await runs.GetAsync("missing")).Should().BeNull();
    }
}
