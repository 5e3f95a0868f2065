using System.Text.Json;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class PlannerTests
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static ExperimentSpec LoadExample(string name) =>
        ExperimentLoader.LoadFile(Path.Combine(RepoPaths.Experiments, name + ".yaml"), new LoadOptions(WorkflowsDirectory: RepoPaths.Workflows)).Require();

    [Fact]
    public void Every_example_in_experiments_is_valid_under_the_policy()
    {
        var files = Directory.GetFiles(RepoPaths.Experiments, "*.yaml");
        files.Should().HaveCountGreaterThanOrEqualTo(12);
        foreach (var file in files)
        {
            var result = ExperimentLoader.LoadFile(file, new LoadOptions(PolicyMode.Enforce, RepoPaths.Workflows));
            result.Diagnostics.Should().BeEmpty(file);
        }
    }

    [Fact]
    public void Per_source_5b_80k_plan_matches_hand_computed_numbers()
    {
        var plan = Planner.Create(LoadExample("per-source-5b-80k"));

        plan.Data.Context.Should().Be(81_920);
        plan.Data.TokenBudget.Should().Be(5_000_000_000);
        plan.Data.PackedSequences.Should().Be(5_000_000_000 / 81_920);           // 61,035
        plan.Training.SequencesPerStep.Should().Be(49);                          // round(4,000,000 / 81,920 = 48.83)
        plan.Training.TokensPerStep.Should().Be(49 * 81_920);
        plan.Training.Steps.Should().Be(61_035 / 49);                           // 1,245
        // The released mix sums to 1.00000001; the planner renormalises so the sources add up to the budget.
        plan.Data.Sources.Single(s => s.Source == "CommonCrawl").Tokens.Should().Be((long)Math.Round(5e9 * 0.53374772 / 1.00000001));
        plan.Data.Sources.Single(s => s.Source == "Book").Tokens.Should().Be((long)Math.Round(5e9 * 0.0414836 / 1.00000001));
        plan.Data.Sources.Sum(s => s.Tokens).Should().BeCloseTo(5_000_000_000, 4);
        plan.Data.Sources.Sum(s => s.Weight).Should().BeApproximately(1.0, 1e-6);
        plan.Model.Parameters.Should().Be(6_738_415_616);                       // LLaMA-2 7B as HuggingFace counts it
        plan.Evaluation.NeedleCells.Should().Be(400);
        plan.Evaluation.NeedleLengths.Should().StartWith([1000L, 4256, 7513]).And.EndWith([124744L, 128000]);
        plan.Evaluation.NeedleDepths.Should().Equal(0, 11, 22, 33, 44, 56, 67, 78, 89, 100);
    }

    [Fact]
    public void A100_estimate_reproduces_the_papers_five_days_on_eight_gpus()
    {
        var plan = Planner.Create(LoadExample("per-source-5b-80k"));

        // The paper: 7B, 5B tokens at 80K, "about 5 days on 8x80G A100" (Table 2: 10 days per 10B tokens).
        var a100 = plan.Compute.Estimates.Single(e => e.Gpu == "a100-80g");
        (a100.WallHours / 24).Should().BeApproximately(5.0, 0.1);
        var h200 = plan.Compute.Estimates.Single(e => e.Gpu == "h200");
        h200.GpuHours.Should().BeApproximately(a100.GpuHours * 312 / 989, 1e-6);
    }

    [Fact]
    public void Calibration_reproduces_every_table_2_cell()
    {
        foreach (var (model, context, days) in Planner.Table2)
        {
            var shape = ModelCatalog.Known[model];
            var mfu = Planner.CalibratedMfu(shape, context);
            var gpuSeconds = Planner.FlopsPerToken(shape, context) * 1e10 / (mfu * 312e12);
            (gpuSeconds / 8 / 86400).Should().BeApproximately(days, 1e-9, $"{model} at {context}");
        }
    }

    [Fact]
    public void Upsample_weights_follow_the_released_code_and_the_target_share()
    {
        var released = Planner.UpsampledWeights(SlimPajama.NaturalMix, [SlimPajamaSource.Github, SlimPajamaSource.ArXiv, SlimPajamaSource.Book], 0.6, null);
        released[SlimPajamaSource.Book].Should().BeApproximately(0.2251, 1e-4);                // 0.6 / 2.6656
        released[SlimPajamaSource.CommonCrawl].Should().BeApproximately(0.2002, 1e-4);

        var book = Planner.UpsampledWeights(SlimPajama.NaturalMix, [SlimPajamaSource.Book], null, 0.515);
        book[SlimPajamaSource.Book].Should().BeApproximately(0.515, 1e-12);
        (book[SlimPajamaSource.CommonCrawl] / book[SlimPajamaSource.C4]).Should().BeApproximately(0.53374772 / 0.26609933, 1e-9);
        book.Values.Sum().Should().BeApproximately(1, 1e-12);
    }

    [Fact]
    public void Global_mode_shifts_weight_towards_sources_with_more_long_text()
    {
        var spec = LoadExample("global-5b-80k");
        var profile = new CorpusProfile("test", SlimPajama.Sources.ToDictionary(s => s, s => s == SlimPajamaSource.Book ? 0.9 : 0.1));

        var plan = Planner.Create(spec, new PlanOptions(profile));

        plan.Data.Sources.Single(s => s.Source == "Book").Weight.Should().BeGreaterThan(SlimPajama.NaturalMix[SlimPajamaSource.Book] * 3);
        plan.Data.Sources.Sum(s => s.Weight).Should().BeApproximately(1, 1e-9);
    }

    [Fact]
    public void Linspace_rounds_like_numpy()
    {
        Planner.Linspace(0, 100, 10).Should().Equal(0, 11, 22, 33, 44, 56, 67, 78, 89, 100);
        Planner.Linspace(1000, 128000, 40).Should().HaveCount(40).And.Contain([79154L, 82410]);
    }

    /// <summary>The whole plan, pinned. Regenerate deliberately with WF_UPDATE_GOLDEN=1 after a reviewed change.</summary>
    [Fact]
    public void Per_source_5b_80k_plan_is_pinned()
    {
        var actual = JsonSerializer.Serialize(Planner.Create(LoadExample("per-source-5b-80k")), Json) + "\n";
        var golden = Path.Combine(RepoPaths.TestData("Golden"), "per-source-5b-80k.plan.json");
        if (Environment.GetEnvironmentVariable("WF_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(golden, actual);
        }

        actual.Should().Be(File.ReadAllText(golden));
    }
}
