using Workflows.Experiments.Matrix;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class SweepPlannerTests
{
    private static readonly WorkflowTemplate Template = TemplateLoader.LoadFile(Path.Combine(RepoPaths.Workflows, "continual-pretraining.yaml")).Template!;

    private static SweepPlan Plan(string yaml) =>
        SweepPlanner.Create(SweepLoader.LoadText("s.yaml", yaml, new LoadOptions(PolicyMode.Off)), Template);

    private static IReadOnlyDictionary<string, int> Executions(SweepPlan plan) => plan.Steps!.ToDictionary(s => s.Step, s => s.Executions);

    [Fact]
    public void The_smoke_sweep_measures_once_prepares_twice_and_trains_three_times()
    {
        var sweep = SweepLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "smoke-sweep.yaml"));
        var plan = SweepPlanner.Create(sweep, SweepPlanner.TemplateFor(sweep, RepoPaths.Workflows));

        Executions(plan).Should().Equal(new Dictionary<string, int>
        {
            [SweepPlanner.MeasureStep] = 1, ["prepare-data"] = 2, ["train"] = 3, ["evaluate-needle"] = 3, ["evaluate-domain-loss"] = 3, ["report"] = 3,
        });
        plan.Steps!.Single(s => s.Step == "prepare-data").Groups.Should().ContainSingle()
            .Which.Should().Equal("smoke-sweep-per-source-lr-low", "smoke-sweep-per-source-lr-high");
        plan.Steps!.Single(s => s.Step == "prepare-data").Saves.Should().Be("one data prep (selecting and packing 16K tokens each)");
        plan.Totals.TokenBudget.Should().Be(3 * 16_000);
    }

    [Fact]
    public void Variants_that_differ_only_in_evaluation_share_the_training_and_the_sweep_counts_it_once()
    {
        var plan = Plan("""
            name: depths
            model: { base: llama-2-7b }
            data: { token_budget: 5B, context: 80K }
            matrix:
              evaluation.needle.depths: [5, 10]
            """);

        Executions(plan)["train"].Should().Be(1);
        Executions(plan)["evaluate-needle"].Should().Be(2);
        var a100 = plan.Totals.Gpus.Single(g => g.Gpu == "a100-80g");
        var one = plan.Variants[0].Plan.Compute.Estimates.Single(e => e.Gpu == "a100-80g").GpuHours;
        a100.GpuHours.Should().BeApproximately(one, 1e-9, "the shared training runs once");
        a100.GpuHoursWithoutSharing.Should().BeApproximately(2 * one, 1e-9);
        plan.Steps!.Single(s => s.Step == "train").Saves.Should().StartWith("one training run (959.5");
    }

    [Fact]
    public void Different_corpora_or_tokenizers_share_no_measure_pass()
    {
        var plan = Plan("""
            name: corpora
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K }
            matrix:
              data.tokenizer: [llama-2, gpt2]
            """);

        Executions(plan)[SweepPlanner.MeasureStep].Should().Be(2);
        plan.Steps!.Should().OnlyContain(s => s.Saves == null);
    }

    [Fact]
    public void Without_a_template_sharing_is_not_guessed()
    {
        var plan = SweepPlanner.Create(SweepLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "smoke-sweep.yaml")), template: null);

        plan.Steps.Should().BeNull();
        plan.Notes.Should().ContainSingle().Which.Should().Contain("not computed");
        plan.Totals.Gpus.Should().OnlyContain(g => g.GpuHours == g.GpuHoursWithoutSharing);
    }
}
