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

public sealed class NeedlePromptSampleTests
{
    [Fact]
    public void Default_sample_spreads_over_the_papers_grid()
    {
        NeedlePromptSample.DefaultCells(NeedleGrid.Paper).Should().Equal(
            from l in new long[] { 1000, 4256, 62872, 95436, 128000 } from d in new[] { 0, 11, 44, 100 } select (l, d));
    }

    [Fact]
    public void Sample_holds_the_builders_ids_with_the_leak_and_without()
    {
        var haystack = Haystack.LoadDirectory(TestData.SampleHaystack);
        var sample = NeedlePromptSample.Build(TestData.Gpt2, haystack, NeedleTask.Paper, [(600, 0), (900, 100)]);

        sample.Cells.Should().HaveCount(4);
        sample.Cells.Select(c => c.FixBosLeak).Should().Equal(false, false, true, true);
        sample.HaystackSha256.Should().Be(KnownHaystacks.PublicDomainSampleSha256);
        sample.MaxContextLength.Should().Be(900);
        var builder = new NeedlePromptBuilder(HfTokenizerBehaviour.For(TestData.Gpt2), haystack, NeedleTask.Paper, 900);
        sample.Cells[1].PromptIds.Should().Equal(builder.Build(900, 100).PromptIds);
        sample.Cells[0].InsertionPoint.Should().Be(builder.Build(600, 0).InsertionPoints[0]);

        var path = Path.Combine(TestData.NewTempDirectory(), "ours.json");
        sample.Write(path);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        json.RootElement.GetProperty("format").GetString().Should().Be("wf-needle-prompts/1");
        json.RootElement.GetProperty("cells")[3].GetProperty("prompt_ids").GetArrayLength().Should().Be(sample.Cells[3].PromptIds.Count);
        json.RootElement.GetProperty("haystack_files").GetArrayLength().Should().Be(4);
    }
}
