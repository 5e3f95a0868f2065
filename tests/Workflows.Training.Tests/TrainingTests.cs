using System.Text.Json;
using Workflows.Training.Data;
using Workflows.Training.Loop;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

/// <summary>The loop on packed sequences of real SlimPajama text (GPT-2 BPE), with a 2-layer d=64 model.</summary>
public class TrainingTests : UsesTempDirectories
{
    const int Context = 64;

    static TrainingOptions Options(int steps, int microBatch = 2, int checkpointEvery = 0) =>
        new(Context: Context, BatchTokens: 4 * Context, MicroBatchSequences: microBatch, TotalSteps: steps,
            LearningRate: 3e-3, WarmupSteps: 3, MaxGradNorm: 1.0, CheckpointEvery: checkpointEvery, Seed: 1);

    static LlamaModel NewModel(int vocab, long seed = 1)
    {
        manual_seed(seed);
        return new LlamaModel(TinyModels.Config(vocab));
    }

    [Fact]
    public void A_tiny_model_learns_real_text_and_logs_every_step()
    {
        var text = RealText.Shared;
        // Shuffled (fixed seed) so that a batch mixes documents, as packed shards of a shuffled corpus do.
        var sequences = text.Pack(Context);
        new Random(15213).Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequences));
        sequences.Count.Should().BeGreaterThan(300);
        var heldOut = sequences.TakeLast(32).ToList();   // never trained on
        var training = sequences.SkipLast(32).ToList();
        string dir = NewTempDirectory();
        var options = Options(steps: 40) with { BatchTokens = 16 * Context, MicroBatchSequences = 8 };

        using var model = NewModel(text.VocabularySize);
        double before = HeldOutLoss(model, heldOut);
        using var trainer = new Trainer(model, options, new InMemoryPackedSequenceSource(training), dir);
        var steps = trainer.Run();
        double after = HeldOutLoss(model, heldOut);

        steps.Should().HaveCount(40);
        before.Should().BeApproximately(Math.Log(text.VocabularySize), 0.3, "a fresh model is close to uniform");
        after.Should().BeLessThan(before - 1.0, "40 steps on real text must generalise to unseen text of the same corpus");
        steps.TakeLast(5).Average(s => s.Loss).Should().BeLessThan(steps.Take(3).Average(s => s.Loss) - 1.0);

        var lines = File.ReadAllLines(trainer.MetricsPath).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        lines.Should().HaveCount(40);
        lines[0].GetProperty("lr").GetDouble().Should().BeApproximately(1e-3, 1e-12, "warmup: step 1 of 3");
        lines[5].GetProperty("lr").GetDouble().Should().Be(3e-3);
        lines[^1].GetProperty("tokens_seen").GetInt64().Should().Be(40L * 16 * Context);
        lines.Should().OnlyContain(l => l.GetProperty("grad_norm").GetDouble() > 0 && l.GetProperty("tokens_per_s").GetDouble() > 0);
    }

    static double HeldOutLoss(LlamaModel model, List<int[]> sequences)
    {
        using var _ = no_grad();
        var batch = tensor(sequences.SelectMany(s => s.Select(t => (long)t)).ToArray(), [sequences.Count, Context + 1]);
        return model.Loss(batch.narrow(1, 0, Context), batch.narrow(1, 1, Context)).item<float>();
    }

    [Fact]
    public void Accumulating_k_micro_batches_gives_the_gradient_of_one_big_batch()
    {
        var text = RealText.Shared;
        var batch = text.Pack(Context).Skip(10).Take(6).ToList();
        Dictionary<string, Tensor> Gradients(int microBatch, out double loss)
        {
            using var model = NewModel(text.VocabularySize, seed: 4);
            using var trainer = new Trainer(model, Options(1, microBatch) with { BatchTokens = 6 * Context }, new InMemoryPackedSequenceSource(batch), NewTempDirectory());
            loss = trainer.AccumulateGradients(batch);
            return trainer.Parameters.Parameters.ToDictionary(p => p.Name, p => { using var g = trainer.Parameters.GradientOf(p.Parameter); return g.clone(); });
        }

        var whole = Gradients(6, out double wholeLoss);
        var inThrees = Gradients(2, out double loss3);      // 3 micro-batches of 2
        var uneven = Gradients(4, out double lossUneven);   // 4 + 2: weights 4/6 and 2/6

        loss3.Should().BeApproximately(wholeLoss, 1e-5);
        lossUneven.Should().BeApproximately(wholeLoss, 1e-5);
        foreach (var (name, g) in whole)
        {
            inThrees[name].allclose(g, rtol: 1e-4, atol: 1e-6).Should().BeTrue(name);
            uneven[name].allclose(g, rtol: 1e-4, atol: 1e-6).Should().BeTrue(name);
        }
    }

    [Fact]
    public void A_run_stopped_after_step_5_and_resumed_ends_bit_identical_to_an_uninterrupted_run()
    {
        var text = RealText.Shared;
        var sequences = text.Pack(Context);
        const int total = 8;

        // Uninterrupted reference.
        string straightDir = NewTempDirectory();
        using var straight = NewModel(text.VocabularySize);
        using (var trainer = new Trainer(straight, Options(total, checkpointEvery: 2), new InMemoryPackedSequenceSource(sequences), straightDir))
            trainer.Run();

        // Killed: cancelled after step 5, with no checkpoint on cancel (a kill gives no chance to save), so the
        // newest complete checkpoint is step 4 and step 5 is redone.
        string dir = NewTempDirectory();
        var killedOptions = Options(total, checkpointEvery: 2) with { CheckpointOnCancel = false };
        using (var cts = new CancellationTokenSource())
        using (var model = NewModel(text.VocabularySize))
        using (var trainer = new Trainer(model, killedOptions, new InMemoryPackedSequenceSource(sequences), dir))
        {
            var progress = new SynchronousProgress(p => { if (p.Step == 5) cts.Cancel(); });
            trainer.Run(progress, cts.Token).Should().HaveCount(5);
        }
        // A checkpoint that was being written when the process died: no COMPLETE marker, garbage inside.
        string halfWritten = TrainingCheckpoints.PathFor(Path.Combine(dir, "checkpoints"), 6);
        Directory.CreateDirectory(halfWritten);
        File.WriteAllText(Path.Combine(halfWritten, "model.safetensors"), "truncated");

        TrainingCheckpoints.FindNewestComplete(Path.Combine(dir, "checkpoints")).Should().EndWith("checkpoint-4");

        // Resumed in a fresh model with a different init: everything must come from the checkpoint.
        using var resumed = NewModel(text.VocabularySize, seed: 77);
        using (var trainer = new Trainer(resumed, Options(total, checkpointEvery: 2), new InMemoryPackedSequenceSource(sequences), dir))
        {
            trainer.ResumeFromNewestCheckpoint().Should().EndWith("checkpoint-4");
            trainer.Step.Should().Be(4);
            trainer.Run().Select(s => s.Step).Should().Equal(5, 6, 7, 8);
        }

        var expected = straight.state_dict();
        foreach (var (name, weight) in resumed.state_dict())
            TinyModels.Identical(weight, expected[name]).Should().BeTrue($"{name} must be bit-identical");
        TrainingCheckpoints.IsComplete(halfWritten).Should().BeTrue("step 6 was rewritten properly by the resumed run");
    }

    [Fact]
    public void The_runner_trains_reports_progress_and_writes_a_loadable_final_model()
    {
        var text = RealText.Shared;
        string dir = NewTempDirectory();
        var job = new TrainingJob(TinyModels.Config(text.VocabularySize), Options(steps: 6), dir);
        var reports = new List<TrainingProgress>();

        var result = TrainingRunner.Run(job, new InMemoryPackedSequenceSource(text.Pack(Context)), new SynchronousProgress(reports.Add));

        result.Finished.Should().BeTrue();
        result.StepsCompleted.Should().Be(6);
        reports.Select(r => r.Step).Should().Equal(1, 2, 3, 4, 5, 6);
        reports[^1].Eta.Should().Be(TimeSpan.Zero);
        reports.Should().OnlyContain(r => r.TokensPerSecond > 0 && r.TotalSteps == 6);
        using var final = Weights.HuggingFaceCheckpoint.LoadModel(result.FinalModelDirectory!);
        final.Config.Should().Be(job.Model);
        TrainingCheckpoints.FindNewestComplete(Path.Combine(dir, "checkpoints")).Should().EndWith("checkpoint-6");

        // Asking to resume a finished run trains nothing more.
        var again = TrainingRunner.Run(job with { Resume = true }, new InMemoryPackedSequenceSource(text.Pack(Context)));
        again.ResumedFrom.Should().EndWith("checkpoint-6");
        again.StepsCompleted.Should().Be(6);
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests need the callback inline.</summary>
    sealed class SynchronousProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
