using Workflows.Training.Bench;
using Workflows.Training.Data;
using Workflows.Training.Loop;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

public class BenchAndOptimizerTests : UsesTempDirectories
{
    static readonly LlamaConfig Tiny = TinyModels.Config(vocab: 97);

    static TrainingOptions Options(OptimizerPlacement placement, int steps, int checkpointEvery = 0) =>
        new(Context: 16, BatchTokens: 4 * 16, MicroBatchSequences: 2, TotalSteps: steps, LearningRate: 1e-2, WarmupSteps: 2,
            MaxGradNorm: 0.5, WeightDecay: 0.1, CheckpointEvery: checkpointEvery, Optimizer: placement, CheckpointOnCancel: false);

    static List<int[]> Data() => BenchModels.RandomSequences(12, 17, 97, seed: 3).ToList();

    LlamaModel Train(OptimizerPlacement placement, int steps, out List<StepMetrics> metrics)
    {
        manual_seed(41);
        var model = new LlamaModel(Tiny);
        using var trainer = new Trainer(model, Options(placement, steps), new InMemoryPackedSequenceSource(Data()), NewTempDirectory());
        metrics = trainer.Run().ToList();
        return model;
    }

    /// <summary>The textbook loop: plain autograd on the whole model, clip_grad_norm_, TorchSharp's optim.AdamW.</summary>
    static LlamaModel TrainWithTorchSharpAdamW(int steps, out List<(double Loss, double Norm)> metrics)
    {
        manual_seed(41);
        var model = new LlamaModel(Tiny);
        var options = Options(OptimizerPlacement.Device, steps);
        using var adamW = TorchSharp.torch.optim.AdamW(model.parameters(), options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        var source = new InMemoryPackedSequenceSource(Data());
        metrics = new();
        for (int step = 1; step <= steps; step++)
        {
            model.zero_grad();
            var batch = Enumerable.Range(0, options.SequencesPerStep).Select(_ => source.Next()).ToList();
            var ids = tensor(batch.SelectMany(s => s.Select(t => (long)t)).ToArray(), [batch.Count, 17]);
            var loss = model.Loss(ids.narrow(1, 0, 16), ids.narrow(1, 1, 16));
            loss.backward();
            double norm = TorchSharp.torch.nn.utils.clip_grad_norm_(model.parameters(), options.MaxGradNorm);
            foreach (var group in adamW.ParamGroups) group.LearningRate = options.LearningRateAt(step);
            adamW.step();
            metrics.Add((loss.item<float>(), norm));
        }
        return model;
    }

    [Theory]
    [InlineData(OptimizerPlacement.Device)]
    [InlineData(OptimizerPlacement.Host)]
    public void The_trainer_takes_the_steps_of_plain_autograd_and_TorchSharps_AdamW_with_clipping_and_weight_decay(OptimizerPlacement placement)
    {
        using var reference = TrainWithTorchSharpAdamW(4, out var referenceMetrics);
        using var ours = Train(placement, 4, out var metrics);

        referenceMetrics.Should().OnlyContain(m => m.Norm > 0.5, "the gradients were clipped, so clipping is compared too");
        for (int i = 0; i < 4; i++)
        {
            metrics[i].Loss.Should().BeApproximately(referenceMetrics[i].Loss, 1e-5);
            metrics[i].GradNorm.Should().BeApproximately(referenceMetrics[i].Norm, 1e-4 * referenceMetrics[i].Norm);
        }
        var expected = reference.state_dict();
        foreach (var (name, weight) in ours.state_dict())
        {
            // The gradients agree to float rounding (summed in another order: block by block, the embedding by
            // index_add); Adam divides by √v, so an element whose gradient is near zero can move by a visible
            // fraction of lr. A wrong rule (decay, clipping, bias correction) moves every element by ~lr·wd·|p| or more.
            var difference = (weight - expected[name]).abs();
            difference.max().item<float>().Should().BeLessThan(1e-4f, $"{name} after 4 steps");
            difference.mean().item<float>().Should().BeLessThan(2e-7f, $"{name} after 4 steps");
        }
    }

    [Theory]
    [InlineData(OptimizerPlacement.Device)]
    [InlineData(OptimizerPlacement.Host)]
    public void A_run_resumes_from_a_checkpoint_bit_identically(OptimizerPlacement placement)
    {
        using var straight = Train(placement, 4, out _);

        string dir = NewTempDirectory();
        manual_seed(41);
        using (var first = new LlamaModel(Tiny))
        using (var trainer = new Trainer(first, Options(placement, 2, checkpointEvery: 2), new InMemoryPackedSequenceSource(Data()), dir))
            trainer.Run();
        File.Exists(Path.Combine(dir, "checkpoints", "checkpoint-2", TrainingCheckpoints.OptimizerFile)).Should().BeTrue();

        manual_seed(5);
        using var resumed = new LlamaModel(Tiny);
        using (var trainer = new Trainer(resumed, Options(placement, 4), new InMemoryPackedSequenceSource(Data()), dir))
        {
            trainer.ResumeFromNewestCheckpoint().Should().EndWith("checkpoint-2");
            trainer.Run().Select(m => m.Step).Should().Equal(3, 4);
        }
        var expected = straight.state_dict();
        foreach (var (name, weight) in resumed.state_dict())
            TinyModels.Identical(weight, expected[name]).Should().BeTrue(name);
    }

    [Fact]
    public void Train_benchmark_runs_the_real_loop_on_cpu_and_reports_each_context()
    {
        var results = TrainBenchmark.Run(new TrainBenchSettings(BenchModels.Preset("tiny") with { NumLayers = 1 }, Contexts: [32, 16], MicroBatch: 2,
            WarmupSteps: 1, MicroBatches: 2, OptimizerSteps: 1, Device: "cpu", Precision.Fp32, ActivationCheckpointing: true, LossChunkTokens: 16,
            OptimizerPlacement.Host, BatchTokens: 256));
        results.Select(r => r.Context).Should().Equal(16, 32);
        foreach (var r in results)
        {
            r.Error.Should().BeNull();
            r.TokensPerSecond.Should().BeGreaterThan(0);
            r.OptimizerStepSeconds.Should().BeGreaterThan(0);
            // 256 tokens per step at context 32: 8 sequences in 4 micro-batches of 2, then one optimizer step.
            if (r.Context == 32) r.ImpliedTokensPerSecond.Should().BeApproximately(256 / (4 * r.MicroBatchSeconds!.Value + r.OptimizerStepSeconds!.Value), 1e-6);
            r.FirstLoss.Should().BeApproximately(Math.Log(1024), 0.5, "a fresh model on random ids is near uniform");
            r.DeviceMemoryUsed.Should().BeNull("no CUDA here");
        }
        BenchModels.MatmulPeak(CPU, 64, 2, ScalarType.Float32).Should().BeGreaterThan(0);
    }

    [Fact]
    public void Train_benchmark_group_figures_take_the_slowest_rank_and_name_a_rank_that_did_not_report()
    {
        var settings = new TrainBenchSettings(BenchModels.Preset("tiny"), Contexts: [32, 64], MicroBatch: 1, WarmupSteps: 1, MicroBatches: 2,
            OptimizerSteps: 1, Device: "cpu", Precision.Fp32, ActivationCheckpointing: true, LossChunkTokens: 0, OptimizerPlacement.Device, BatchTokens: 128);
        TrainBenchContextResult Row(int context, double micro, double step, long memory) =>
            new(context, micro, 64 / (2 * micro), step, null, 7.0, 6.9, memory, 100, null, Tokens: 64, Ranks: 2);
        var rank0 = new TrainBenchRankReport(0, 2, "cuda:0", 1e12, [Row(32, 0.5, 0.2, 40), Row(64, 1.0, 0.2, 60)]);
        var rank1 = new TrainBenchRankReport(1, 2, "cuda:1", 1e12, [Row(32, 0.6, 0.1, 50), new(64, null, null, null, null, null, null, null, null, "out of memory")]);

        var both = TrainBenchGroupResult.Combine(settings, 32, [rank0, rank1]);
        both.Error.Should().BeNull();
        both.Tokens.Should().Be(128);
        both.MicroBatchSeconds.Should().Be(0.6);
        both.OptimizerStepSeconds.Should().Be(0.2);
        both.TokensPerSecond.Should().BeApproximately(128 / (2 * 0.6), 1e-9);
        both.TokensPerSecondPerGpu.Should().BeApproximately(64 / (2 * 0.6), 1e-9);
        both.ImpliedTokensPerSecond.Should().BeApproximately(128 / (2 * 0.6 + 0.2), 1e-9, "4 micro-batches per step in 2 rounds");
        both.DeviceMemoryUsed.Should().Be(50, "the largest rank");

        TrainBenchGroupResult.Combine(settings, 64, [rank0, rank1]).Error.Should().Be("rank 1: out of memory");
        var missing = TrainBenchGroupResult.Combine(settings, 32, [rank0, null]);
        missing.Error.Should().Be("rank(s) 1 of 2 did not report this context");
        missing.PerRank.Should().HaveCount(2).And.Subject.Last().Should().BeNull();
    }

    [Fact]
    public void Prefill_benchmark_grid_gives_identical_outputs_with_prefix_reuse_and_prefills_fewer_tokens()
    {
        var settings = new PrefillBenchSettings(Tiny, "cpu", Bf16Weights: false, Lengths: [40, 60], ChunkTokens: 16, Repeats: 1,
            GridLengths: [48, 64], GridDepths: 4, NeedleTokens: 5, QuestionTokens: 3, NewTokens: 6);
        var result = PrefillBenchmark.Run(settings);

        result.Prefill.Select(r => r.Length).Should().Equal(40, 60);
        result.Prefill.Should().OnlyContain(r => r.TokensPerSecond > 0);
        var grid = result.Grid!;
        grid.Cells.Should().Be(8);
        grid.IdenticalOutputs.Should().Be(8, "reusing the cached prefix must not change any answer");
        grid.WithoutReuse.PrefilledTokens.Should().Be(4 * 48 + 4 * 64);
        // Haystacks of 40 and 56 tokens, insertion points 0, 13, 27, 40 and 0, 19, 37, 56: the haystack once, plus
        // needle + rest + question per cell.
        long reusePrefill = 40 + (48 + 35 + 21 + 8) + 56 + (64 + 45 + 27 + 8);
        grid.WithReuse.PrefilledTokens.Should().Be(reusePrefill);
    }

    [Fact]
    public void Flop_counts_follow_the_documented_formulas()
    {
        var c = LlamaConfig.Llama2Shape7B;
        BenchModels.MatmulParameters(c).Should().Be(c.ParameterCount() - 32000L * 4096 - 65 * 4096L, "all but the embedding table and the norms");
        BenchModels.TrainingFlopsPerToken(c, 32768).Should().Be(6.0 * BenchModels.MatmulParameters(c) + 6.0 * 32 * 4096 * 32768);
        BenchModels.TrainingFlopsPerToken(c, 32768, palm: true).Should().Be(6.0 * BenchModels.MatmulParameters(c) + 12.0 * 32 * 4096 * 32768);
    }

    [PythonFact]
    public void The_shipped_twin_parses_the_arguments_the_benchmark_passes()
    {
        string script = PythonTwin.ExtractScript();
        var args = PythonTwin.ShapeArguments(Tiny, "cpu", 0, 1);
        var psi = new System.Diagnostics.ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import sys, runpy; m = runpy.run_path(sys.argv[1]); a = m['parse_args'](sys.argv[2:]); print(a.mode, a.layers, a.kv_heads, a.contexts, a.scheme, a.offload, a.optimizer)");
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add("train");
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "--contexts", "32,64", "--offload", "cpu", "--micro-batches", "2", "--optimizer-steps", "1", "--batch-tokens", "4000000" })
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        (p.ExitCode, output.Trim()).Should().Be((0, "train 2 2 32,64 lean cpu fused"), p.StandardError.ReadToEnd());
    }
}

/// <summary>A fact that needs python3 on PATH (torch is not needed: only argument parsing runs).</summary>
public sealed class PythonFactAttribute : FactAttribute
{
    public PythonFactAttribute()
    {
        bool found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, "python3")));
        if (!found) Skip = "python3 is not on PATH";
    }
}
