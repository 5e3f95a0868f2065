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
            // Sweep files (matrix:) too: every variant is checked.
            var result = Workflows.Experiments.Matrix.SweepLoader.LoadFile(file, new LoadOptions(PolicyMode.Enforce, RepoPaths.Workflows));
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
        // Book 90% long, every other source 10% long (by tokens; documents of 8,192 and 1,024 tokens).
        var stats = Corpus(SlimPajama.Sources.ToDictionary(s => s, s => s == SlimPajamaSource.Book ? (9, 8) : (1, 72)));

        var plan = Planner.Create(spec, new PlanOptions(stats));

        plan.Data.Sources.Single(s => s.Source == "Book").Weight.Should().BeGreaterThan(1.0 / 7 * 3);
        plan.Data.Sources.Sum(s => s.Weight).Should().BeApproximately(1, 1e-9);
    }

    /// <summary>
    /// A corpus of chars = 4 × tokens documents: per source (long, short) counts of documents of 8,192 and 1,024
    /// tokens (one length each, so every figure can be worked by hand).
    /// </summary>
    private static CorpusStatistics Corpus(IReadOnlyDictionary<SlimPajamaSource, (int Long, int Short)> counts)
    {
        LengthCell Cell(long tokens, int docs) =>
            new(CorpusStatistics.Bin(tokens), CorpusStatistics.Bin(tokens * 4), docs, docs * tokens, docs * tokens * 4, (double)docs * tokens * tokens);
        var sources = counts.Where(c => c.Value.Long + c.Value.Short > 0).ToDictionary(
            c => c.Key,
            c => SourceLengths.From(new[] { Cell(8192, c.Value.Long), Cell(1024, c.Value.Short) }.Where(x => x.Documents > 0)));
        return new CorpusStatistics(CorpusStatistics.FormatName, "test", "llama2-sp:test", [], sources);
    }

    private static ExperimentSpec PerSource(string extra = "", string budget = "1M") => ExperimentLoader.LoadText("x.yaml", $$"""
        name: forecast
        profile: dev
        model: { base: tiny }
        data:
          token_budget: {{budget}}
          context: 4K
          mix: { Book: 0.5, C4: 0.5 }
          upsampling: { mode: per-source, short_keep_ratio: 0.1, length_measure: tokens{{extra}} }
        """, new LoadOptions(PolicyMode.Off)).Require();

    private static ExperimentSpec WithPaperRule(ExperimentSpec spec) => spec with { Data = spec.Data with { BudgetRule = BudgetRule.Paper } };

    [Fact]
    public void Bins_have_powers_of_two_as_edges()
    {
        CorpusStatistics.Bin(4096).Should().Be(192);
        CorpusStatistics.Bin(4095).Should().Be(191);
        CorpusStatistics.Bin(1).Should().Be(0);
        CorpusStatistics.Bin(65536).Should().Be(256);
        CorpusStatistics.BinStart(192).Should().Be(4096);
        CorpusStatistics.ShareAtOrAbove(192, 4096).Should().Be(1);
        CorpusStatistics.ShareAtOrAbove(191, 4096).Should().Be(0);
        CorpusStatistics.ShareAtOrAbove(192, Math.Pow(2, 12 + (0.5 / 16))).Should().BeApproximately(0.5, 1e-9);
    }

    [Fact]
    public void Per_source_forecast_keeps_the_long_documents_and_a_tenth_of_the_short_ones()
    {
        // C4: 10 long (81,920 tokens) + 400 short (409,600 tokens); keeping 10% of short: 81,920 / (81,920 + 40,960) = 2/3.
        var stats = Corpus(new Dictionary<SlimPajamaSource, (int, int)> { [SlimPajamaSource.C4] = (10, 400), [SlimPajamaSource.Book] = (50, 0) });

        var plan = Planner.Create(PerSource(), new PlanOptions(stats));

        var c4 = plan.Data.Sources.Single(s => s.Source == "C4");
        c4.NaturalLongShare.Should().BeApproximately(81_920.0 / 491_520, 1e-12);
        c4.ExpectedLongShare.Should().BeApproximately(2.0 / 3, 1e-12);
        c4.AvailableTokens.Should().Be(122_880);
        c4.EpochsNeeded.Should().BeApproximately(500_000.0 / 122_880, 1e-9, "1M x 0.5 asked of 122,880 available");
        c4.ExpectedTokens.Should().Be(122_880, "data prep reads each document once: the source gives what it has");
        var book = plan.Data.Sources.Single(s => s.Source == "Book");
        book.EpochsNeeded.Should().BeApproximately(500_000.0 / 409_600, 1e-9);
        plan.Assumptions.Should().Contain(a => a.Contains("C4 needs 4.07 epochs", StringComparison.Ordinal));

        // With a budget the sources can serve, each gives its share and the long share is unchanged in expectation.
        var small = Planner.Create(PerSource(budget: "100K"), new PlanOptions(stats)).Data.Sources.Single(s => s.Source == "C4");
        small.ExpectedTokens.Should().Be(50_000);
        small.ExpectedLongShare.Should().BeApproximately(2.0 / 3, 1e-12);
        small.LongShareSd.Should().BeGreaterThan(0);
    }

    [Fact]
    public void Paper_budget_rule_forecasts_the_overshoot_of_the_crossing_document()
    {
        var stats = Corpus(new Dictionary<SlimPajamaSource, (int, int)> { [SlimPajamaSource.C4] = (10, 400), [SlimPajamaSource.Book] = (50, 0) });

        var exact = Planner.Create(PerSource(budget: "100K"), new PlanOptions(stats));
        var paper = Planner.Create(WithPaperRule(PerSource(budget: "100K")), new PlanOptions(stats));

        exact.Data.BudgetRule.Should().Be("exact");
        exact.Data.Sources.Should().OnlyContain(s => s.OvershootTokens == null);
        paper.Data.BudgetRule.Should().Be("paper");
        // Book: only 8,192-token documents, so the crossing one overshoots by half of one on average: E[L²] / 2E[L].
        paper.Data.Sources.Single(s => s.Source == "Book").OvershootTokens.Should().Be(4096);
        // C4: eligible = 10 long + a tenth of 400 short: (10·8192² + 40·1024²) / (2 · (10·8192 + 40·1024)).
        paper.Data.Sources.Single(s => s.Source == "C4").OvershootTokens.Should().Be((long)Math.Round((10 * 8192.0 * 8192 + 40 * 1024.0 * 1024) / (2 * (10 * 8192.0 + 40 * 1024))));
        paper.Data.Sources.Single(s => s.Source == "Book").ExpectedTokens.Should().Be(50_000 + 4096);
        paper.Assumptions.Should().Contain(a => a.StartsWith("budget_rule paper", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_statistics_the_plan_says_its_shares_are_assumed()
    {
        var plan = Planner.Create(PerSource());
        plan.Data.LengthStatistics.Should().StartWith("assumed, not measured");
        plan.Data.Sources.Should().OnlyContain(s => s.NaturalLongShare == AssumedLengths.LongTokenShare && s.ExpectedTokens == null);
        plan.Data.LengthHistogram.Should().BeNull();
    }

    [Fact]
    public void On_slimpajama_the_papers_figure_2_is_shown_beside_the_forecast()
    {
        var stats = Corpus(SlimPajama.Sources.ToDictionary(s => s, _ => (1, 8))) with { Name = "slimpajama" };

        var plan = Planner.Create(LoadExample("per-source-5b-80k"), new PlanOptions(stats));

        plan.Data.PaperVariant.Should().Be("Per-source");
        plan.Data.Sources.Single(s => s.Source == "ArXiv").PaperShare.Should().Be(0.052);
        var histogram = plan.Data.LengthHistogram!;
        histogram.Select(b => b.Bucket).Should().Equal("0-1K", "1-2K", "2-4K", "4-8K", "8-16K", "16-32K", "32-64K", "64-128K", ">128K");
        histogram[0].PaperOriginal.Should().Be(0.255);
        histogram[3].PaperVariant.Should().Be(0.272);
        // Half the tokens are in 1K documents (bucket 1-2K) and half in 8K ones (8-16K) before selection.
        histogram[1].Before.Should().BeApproximately(0.5, 1e-12);
        histogram[4].Before.Should().BeApproximately(0.5, 1e-12);
        histogram.Sum(b => b.After).Should().BeApproximately(1, 1e-9);
        histogram[4].After.Should().BeApproximately(1 / 1.1, 1e-9);
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
