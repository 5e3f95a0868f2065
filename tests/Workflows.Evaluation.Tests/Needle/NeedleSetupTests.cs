using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Tests.Needle;

public sealed class NeedleSetupTests
{
    [Fact]
    public void The_paper_grid_is_40_lengths_by_10_depths()
    {
        NeedleGrid.Paper.Lengths.Should().Equal(
            1000, 4256, 7513, 10769, 14026, 17282, 20538, 23795, 27051, 30308, 33564, 36821, 40077, 43333, 46590, 49846,
            53103, 56359, 59615, 62872, 66128, 69385, 72641, 75897, 79154, 82410, 85667, 88923, 92179, 95436, 98692,
            101949, 105205, 108462, 111718, 114974, 118231, 121487, 124744, 128000);
        NeedleGrid.Paper.Depths.Should().Equal(0, 11, 22, 33, 44, 56, 67, 78, 89, 100);
        NeedleGrid.Paper.CellCount.Should().Be(400);
        NeedleGrid.FromSpec(new NeedleSpec()).Should().BeEquivalentTo(NeedleGrid.Paper);
    }

    [Fact]
    public void Rope_reset_length_is_the_fields_value_else_the_training_context()
    {
        var spec = new ExperimentSpec("x", new ModelSpec("tiny"), new DataSpec(1_000_000, 65536));
        NeedleSetup.RopeResetLength(spec).Should().Be(65536);
        NeedleSetup.RopeResetLength(spec with { Evaluation = new EvaluationSpec(new NeedleSpec(RopeResetLength: 81920)) }).Should().Be(81920);
    }

    [Fact]
    public void Spec_settings_reach_the_builder_and_a_dry_run_counts_prefix_reuse()
    {
        var spec = new NeedleSpec(Lengths: new NeedleLengths(500, 900, 3), Depths: 5, Scorer: NeedleScorer.Rouge1, FixBosLeak: true, Trials: 2);
        var setup = NeedleSetup.FromSpec(spec, TestData.Gpt2, TestData.SampleHaystack);
        setup.Grid.Lengths.Should().Equal(500, 700, 900);
        setup.Grid.Depths.Should().Equal(0, 25, 50, 75, 100);
        setup.Scorer.Should().Be(NeedleScoreKind.Rouge1);
        setup.Builder.Options.FixBosLeak.Should().BeTrue();
        setup.Haystack.Files.Should().HaveCount(4);

        var dry = NeedleRunner.DryRun(setup.Builder, setup.Grid);
        dry.Cells.Should().Be(30);
        dry.PromptTokens.Should().BeGreaterThan(30 * 300);
        // Per (trial, length): the deepest prompt whole, then each shallower one from its needle on:
        // 1 + (1 − .75) + (1 − .5) + (1 − .25) + 1 = 3.5 prompts' worth of 5 → 1.43 at best (less the fixed template).
        dry.PrefillSaving.Should().BeInRange(1.25, 1.43);

        // Ordered by needle position over all lengths, the deepest prompt of a length reuses a longer length's prefix.
        var global = NeedleRunner.DryRun(setup.Builder, setup.Grid, NeedleRunOrder.ByNeedlePosition);
        global.PromptTokens.Should().Be(dry.PromptTokens);
        global.PrefillTokensWithReuse.Should().BeLessThan(dry.PrefillTokensWithReuse);
    }
}
