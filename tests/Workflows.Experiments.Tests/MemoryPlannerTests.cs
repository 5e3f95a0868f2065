using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class MemoryPlannerTests
{
    private static ExperimentSpec Example(string name) =>
        ExperimentLoader.LoadFile(Path.Combine(RepoPaths.Experiments, name + ".yaml"), new LoadOptions(WorkflowsDirectory: RepoPaths.Workflows)).Require();

    private static ExperimentSpec With(ExperimentSpec spec, long context, GpuType gpu, int gpus, Offload offload = Offload.Auto, int microBatch = 1) =>
        spec with
        {
            Data = spec.Data with { Context = context },
            Training = spec.Training with { MicroBatch = microBatch, Optimizer = new OptimizerSpec(offload) },
            Resources = new ResourcesSpec(gpu, gpus),
        };

    private const double GiB = 1L << 30;

    [Theory]
    // context, twin's measured peak allocated (GiB) for the same scheme: bf16 parameters, fp32 gradient buffers,
    // optimizer state in host memory (wf bench train --preset 7b --offload cpu, one H200, docs/training.md)
    [InlineData(32_768, 53.3)]
    [InlineData(65_536, 68.8)]
    [InlineData(81_920, 76.6)]
    public void The_7b_plan_with_the_optimizer_in_host_memory_is_within_3_percent_of_the_measured_peak(long context, double measuredGiB)
    {
        var spec = With(Example("per-source-5b-80k"), context, GpuType.H200, 1, Offload.Cpu);
        var choice = MemoryPlanner.Choose(spec, ModelCatalog.Resolve(spec.Model)!)!;
        choice.Chosen!.Placement.Should().Be("cpu");
        (choice.Chosen.Total / GiB).Should().BeApproximately(measuredGiB, measuredGiB * 0.03);
        choice.Chosen.HostBytes.Should().Be(12 * 6_738_415_616L, "master weights and both moments, fp32");
    }

    [Fact]
    public void Auto_keeps_the_optimizer_on_the_gpu_when_it_fits_and_moves_it_to_the_host_when_it_does_not()
    {
        var paper = Example("per-source-5b-80k");
        var small = With(paper, 32_768, GpuType.H200, 1) with { Model = paper.Model with { Architecture = new ArchitectureSpec(Layers: 22, HiddenSize: 2048, Heads: 32, KvHeads: 4, IntermediateSize: 5632) } };
        MemoryPlanner.Choose(small, ModelCatalog.Resolve(small.Model)!)!.Chosen!.Placement.Should().Be("gpu", "1.1B with 18 bytes per parameter fits an H200");

        var large = With(paper, 81_920, GpuType.H200, 1);
        var choice = MemoryPlanner.Choose(large, ModelCatalog.Resolve(large.Model)!)!;
        choice.Candidates.Single(c => c.Placement == "gpu").Fits.Should().BeFalse("7B needs 16 bytes per parameter before activations");
        choice.Chosen!.Placement.Should().Be("cpu");
        choice.Note.Should().Contain("host memory");
    }

    [Fact]
    public void The_paper_runs_on_eight_gpus_shard_gradients_and_optimizer_state_and_13b_at_64k_gets_stage_3_with_the_optimizer_in_host_memory()
    {
        var seven = Example("per-source-5b-80k");
        var choice7 = MemoryPlanner.Choose(seven, ModelCatalog.Resolve(seven.Model)!)!;
        choice7.Chosen!.ZeroStage.Should().Be(2);
        choice7.Chosen.Rows.Single(r => r.What.StartsWith("gradients")).Bytes.Should().Be((4 * 6_738_415_616L / 8) + (200L << 20));

        // 13B at 64K on 8 x A100-80G: no stage-2 plan fits, stage 3 with the optimizer on the GPU neither; stage 3 with
        // the optimizer in host memory does, and its parameters row is a shard plus two gathered blocks.
        var thirteen = Example("per-source-13b-64k");
        var shape13 = ModelCatalog.Resolve(thirteen.Model)!;
        var choice13 = MemoryPlanner.Choose(thirteen, shape13)!;
        choice13.Candidates.Where(c => c.ZeroStage == 2).Should().OnlyContain(c => !c.Fits);
        choice13.Candidates.Single(c => c.ZeroStage == 3 && c.Placement == "gpu").Fits.Should().BeFalse();
        choice13.Chosen!.ZeroStage.Should().Be(3);
        choice13.Chosen.Placement.Should().Be("cpu");
        choice13.Chosen.Rows[0].Bytes.Should().Be((2 * shape13.Parameters / 8) + (2 * 2 * (shape13.Parameters / shape13.Layers)));
        choice13.Note.Should().Contain("ZeRO stage 3").And.Contain("host memory");

        // Stage 3 keeps no block graph: 13B at 4K without activation checkpointing (every block's activations kept)
        // would fit only with stage 3, so nothing is chosen, and the note says what to change.
        var at4k = With(thirteen, 4096, GpuType.A100, 8);
        var noRecompute = at4k with { Training = at4k.Training with { ActivationCheckpointing = false } };
        MemoryPlanner.Choose(noRecompute, shape13)!.Candidates.Where(c => c.Fits).Should().OnlyContain(c => c.ZeroStage == 3).And.NotBeEmpty();
        var refused = MemoryPlanner.Choose(noRecompute, shape13)!;
        refused.Chosen.Should().BeNull();
        refused.Note.Should().Contain("ZeRO stage 3").And.Contain("training.activation_checkpointing: true");
    }

    [Fact]
    public void A_run_that_fits_only_with_stage_3_and_turns_activation_checkpointing_off_is_refused_at_validate_with_a_location()
    {
        var (diagnostic, text) = TheMemoryDiagnostic("per-source-13b-64k", yaml => yaml
            .Replace("  micro_batch: 1", "  micro_batch: 1\n  activation_checkpointing: false", StringComparison.Ordinal)
            .Replace("  context: 64K", "  context: 4K", StringComparison.Ordinal));
        diagnostic.Path.Should().Be("training.activation_checkpointing");
        diagnostic.Location.Line.Should().Be(text.Split('\n').ToList().FindIndex(l => l.Contains("activation_checkpointing: false")) + 1);
        diagnostic.Message.Should().Contain("ZeRO stage 3");
    }

    [Fact]
    public void A_run_that_cannot_fit_anywhere_is_refused_at_validate_with_a_location()
    {
        var (diagnostic, text) = TheMemoryDiagnostic("per-source-5b-80k", yaml => yaml
            .Replace("  micro_batch: 1", "  micro_batch: 8\n  optimizer: { offload: gpu }", StringComparison.Ordinal)
            .Replace("  gpu: a100-80g\n  gpu_count: 8", "  gpu: a100-80g\n  gpu_count: 1", StringComparison.Ordinal));
        diagnostic.Path.Should().Be("training.optimizer.offload");
        diagnostic.Location.Line.Should().Be(text.Split('\n').ToList().FindIndex(l => l.Contains("offload: gpu")) + 1);
        diagnostic.Message.Should().Contain("per GPU").And.Contain("a100-80g");
    }

    /// <summary>Validates an example experiment edited by <paramref name="edit"/>; returns its one out-of-range diagnostic and the edited text.</summary>
    private static (Diagnostic Diagnostic, string Text) TheMemoryDiagnostic(string example, Func<string, string> edit)
    {
        var dir = Path.Combine(Path.GetTempPath(), "wf-memory-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var text = edit(File.ReadAllText(Path.Combine(RepoPaths.Experiments, example + ".yaml")));
            var file = Path.Combine(dir, example + ".yaml");
            File.WriteAllText(file, text);
            var result = ExperimentLoader.LoadFile(file, new LoadOptions(WorkflowsDirectory: RepoPaths.Workflows));
            return (result.Diagnostics.Should().ContainSingle(d => d.Code == DiagnosticCode.OutOfRange).Subject, text);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
