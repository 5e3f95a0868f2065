using Workflows.Artifacts.Tests;
using Workflows.Training.Bench;
using Workflows.Training.Data;
using Workflows.Training.Loop;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

/// <summary>Checkpoints in the artifact store (a real Azurite): uploaded while training, pruned, and resumed on an empty disk.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class CheckpointStoreTests(AzuriteFixture azurite) : UsesTempDirectories
{
    const int Vocab = 89;

    static TrainingJob Job(string dir, bool resume = false) => new(TinyModels.Config(Vocab),
        new TrainingOptions(Context: 16, BatchTokens: 32, MicroBatchSequences: 1, TotalSteps: 5, LearningRate: 1e-2, WarmupSteps: 1,
            CheckpointEvery: 1, KeepCheckpoints: 2, CheckpointOnCancel: false, Seed: 3),
        dir, Resume: resume);

    static InMemoryPackedSequenceSource Data() => new(BenchModels.RandomSequences(30, 17, Vocab, seed: 12).ToList());

    sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    [Fact]
    public async Task A_run_stopped_after_step_3_continues_on_an_empty_disk_from_the_store_and_ends_bit_identical()
    {
        var straightDir = NewTempDirectory();
        var straightStore = new ArtifactCheckpointStore(await azurite.NewStoreAsync(), "train/straight");
        var straight = TrainingRunner.Run(Job(straightDir), Data(), store: straightStore);
        straight.Finished.Should().BeTrue();
        (await straightStore.ListAsync()).Should().Equal(4, 5);
        TrainingCheckpoints.Complete(Path.Combine(straightDir, "checkpoints")).Select(c => c.Step).Should().Equal(5, 4);

        // The first machine: stopped after step 3 (its checkpoints 1..3 were uploaded while it trained, 2 and 3 kept).
        var store = new ArtifactCheckpointStore(await azurite.NewStoreAsync(), "train/run");
        var firstDir = NewTempDirectory();
        using (var cts = new CancellationTokenSource())
        {
            var first = TrainingRunner.Run(Job(firstDir), Data(), new InlineProgress(p => { if (p.Step == 3) cts.Cancel(); }), cts.Token, store);
            first.Finished.Should().BeFalse();
            first.StepsCompleted.Should().Be(3);
        }
        (await store.ListAsync()).Should().Equal(2, 3);

        // The second machine: an empty work folder; everything comes from the store.
        var secondDir = NewTempDirectory();
        Directory.Delete(secondDir);
        var logs = new List<string>();
        var second = TrainingRunner.Run(Job(secondDir, resume: true), Data(), store: store, log: logs.Add);
        second.ResumedFrom.Should().EndWith("checkpoint-3");
        second.Finished.Should().BeTrue();
        logs.Should().Contain(l => l.StartsWith("checkpoint 3 downloaded", StringComparison.Ordinal));
        (await store.ListAsync()).Should().Equal(4, 5);

        using var expected = Weights.HuggingFaceCheckpoint.LoadModel(straight.FinalModelDirectory!);
        using var actual = Weights.HuggingFaceCheckpoint.LoadModel(second.FinalModelDirectory!);
        var want = expected.state_dict();
        foreach (var (name, weight) in actual.state_dict())
            TinyModels.Identical(weight, want[name]).Should().BeTrue($"{name} must be bit-identical to the uninterrupted run");
        File.ReadAllLines(Path.Combine(secondDir, "metrics.jsonl")).Should().HaveCount(5, "the history up to step 3 came with the checkpoint");
    }

    [Fact]
    public async Task A_corrupted_checkpoint_blob_is_refused_on_download()
    {
        var artifacts = await azurite.NewStoreAsync();
        var store = new ArtifactCheckpointStore(artifacts, "c");
        var dir = NewTempDirectory();
        TrainingRunner.Run(Job(dir) with { Training = Job(dir).Training with { TotalSteps = 1 } }, Data(), store: store).Finished.Should().BeTrue();
        // Overwrite one blob with other bytes under the same name.
        await foreach (var blob in artifacts.ListAsync("c/blobs/"))
        {
            using var junk = new MemoryStream(new byte[blob.Length]);
            await artifacts.PutAsync(blob.Name, junk);
            break;
        }
        var target = Path.Combine(NewTempDirectory(), "checkpoint-1");
        var act = () => store.DownloadAsync(1, target);
        await act.Should().ThrowAsync<Workflows.Artifacts.Store.ArtifactCorruptedException>();
        Directory.Exists(target).Should().BeFalse("a checkpoint that failed verification is never placed where a resume would take it");
        Directory.GetDirectories(Path.GetDirectoryName(target)!).Should().BeEmpty("the partial download is removed");
    }
}
