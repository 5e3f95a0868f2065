using System.Text.Json.Nodes;
using Workflows.Evaluation.Comparison;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Tests.Comparison;

public sealed class ComparisonTests : IDisposable
{
    private const string Right = "eat a sandwich and sit in Dolores Park on a sunny day.";
    private readonly string _dir = TestData.NewTempDirectory();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static NeedleResult Result(long length, int depth, string response) => TestData.NeedleResult(length, depth, response);

    /// <summary>A 3-length × 2-depth grid: the lengths listed as right are answered right at both depths, the rest wrong.</summary>
    private static List<NeedleResult> Grid(params long[] right) =>
        [.. new long[] { 1000, 2000, 3000 }.SelectMany(l => new[] { 0, 100 }.Select(d => Result(l, d, right.Contains(l) ? Right : "no idea")))];

    private static DomainLossReport Loss(double c4Short, double bookLong, double at1K) => new("x",
        [new("0-4K", SlimPajamaSource.C4, c4Short, 400), new("4K-128K", SlimPajamaSource.Book, bookLong, 900)],
        [new LengthLossEntry(1024, SlimPajamaSource.C4, at1K, 100), new LengthLossEntry(1024, SlimPajamaSource.Book, at1K + 0.4, 300)]);

    private static ComparedRun Run(string id, string experiment, string mode, string lr, List<NeedleResult> needle, DomainLossReport? loss, string? baselineName = null) =>
        new(id, experiment, "succeeded",
            new Dictionary<string, string>
            {
                ["name"] = experiment, ["description"] = "differs, never shown " + id, ["data.upsampling.mode"] = mode, ["training.lr"] = lr,
                ["data.context"] = "1024", ["gitops.baseline"] = baselineName ?? "",
            },
            NeedleScoreKind.WordRecall, needle, loss, 1500);

    [Fact]
    public void Numbers_against_the_baseline_only_differing_parameters_and_the_papers_colours()
    {
        var runs = new[]
        {
            Run("r1", "base", "none", "0.001", Grid(1000), Loss(2.000, 1.800, 1.9)),
            Run("r2", "better", "per-source", "0.001", Grid(1000, 2000), Loss(2.020, 1.700, 1.5)),
            Run("r3", "same", "per-source", "0.003", Grid(1000, 2000, 3000), Loss(2.005, 1.805, 1.9)),
        };

        var c = Workflows.Evaluation.Comparison.Comparison.Build(new ComparisonInput("t", runs));

        c.Baseline.Should().Be("r1", "no run names another as gitops.baseline: the first");
        c.DifferingParameters.Should().Equal("data.upsampling.mode", "training.lr");
        c.Runs[1].Parameters.Should().Equal(new Dictionary<string, string> { ["data.upsampling.mode"] = "per-source", ["training.lr"] = "0.001" });

        // word recall: a right answer is 11/12; base has 2 of 6 right, better 4 of 6, same 6 of 6.
        const double right = 11.0 / 12;
        c.Runs[0].Needle!.Mean.Should().BeApproximately(right * 2 / 6, 1e-12);
        c.Runs[0].Needle!.Delta.Should().BeNull();
        c.Runs[1].Needle!.Delta.Should().BeApproximately(right * 2 / 6, 1e-12);
        c.Runs[1].Needle!.PerLength.Select(l => (l.Length, Math.Round(l.Mean, 6), l.Delta is { } d ? Math.Round(d, 6) : (double?)null)).Should().Equal(
            (1000L, Math.Round(right, 6), 0.0), (2000L, Math.Round(right, 6), Math.Round(right, 6)), (3000L, 0.0, 0.0));
        c.Runs[2].Needle!.EffectiveLength.Should().Be(3000, "every length's mean is 11/12 ≥ 0.856");
        c.Runs[1].Needle!.EffectiveLength.Should().Be(2000);
        c.Runs[0].Needle!.EffectiveLength.Should().Be(1000);

        var better = c.Runs[1].Loss!.Buckets;
        better.Single(b => b.Source == SlimPajamaSource.C4).Mark.Should().Be(DeltaMark.Red, "+0.020 > +0.01");
        better.Single(b => b.Source == SlimPajamaSource.Book).Mark.Should().Be(DeltaMark.Green, "−0.100 < −0.01");
        c.Runs[2].Loss!.Buckets.Select(b => b.Mark).Should().Equal(DeltaMark.Grey, DeltaMark.Grey);
        // Loss@1K token-weighted: (1.9·100 + 2.3·300)/400 = 2.2 for base, (1.5·100 + 1.9·300)/400 = 1.8 for 'better'.
        c.Runs[0].Loss!.Lengths.Single().Loss.Should().BeApproximately(2.2, 1e-12);
        c.Runs[1].Loss!.Lengths.Single().Delta.Should().BeApproximately(-0.4, 1e-12);
        c.Runs[1].Loss!.Lengths.Single().Mark.Should().Be(DeltaMark.Green);
    }

    [Fact]
    public void The_default_baseline_is_the_run_the_others_name_and_an_explicit_one_wins()
    {
        var runs = new[]
        {
            Run("r1", "per-source", "per-source", "0.001", Grid(), null, baselineName: "original"),
            Run("r2", "original", "none", "0.001", Grid(), null, baselineName: "original"),
        };

        Workflows.Evaluation.Comparison.Comparison.Build(new ComparisonInput("t", runs)).Baseline.Should().Be("r2");
        Workflows.Evaluation.Comparison.Comparison.Build(new ComparisonInput("t", runs, "r1")).Baseline.Should().Be("r1");
        var unknown = () => Workflows.Evaluation.Comparison.Comparison.Build(new ComparisonInput("t", runs, "r9"));
        unknown.Should().Throw<ArgumentException>().WithMessage("baseline 'r9' is not one of the compared runs*");
    }

    [Fact]
    public void Writes_markdown_json_and_heatmaps_with_runs_that_did_not_succeed_listed_without_numbers()
    {
        var failed = Run("r3", "broken", "none", "0.01", [], null) with { State = "failed", Error = "step 'train': out of memory | twice" };
        var runs = new[]
        {
            Run("r1", "base", "none", "0.001", Grid(1000), Loss(2.000, 1.800, 1.9)),
            Run("r2", "better", "per-source", "0.001", Grid(1000, 2000), Loss(2.020, 1.700, 1.5)),
            failed,
        };

        var files = ComparisonMarkdown.Write(_dir, new ComparisonInput("t", runs));

        files.Images.Select(Path.GetFileName).Should().Equal("heatmap-01.png", "heatmap-02.png", "difference-02.png");
        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain("| run | experiment | state | `data.upsampling.mode` | `training.lr` |");
        md.Should().Contain("| `r3` | `broken` | failed | none | 0.01 |");
        md.Should().Contain("`broken` failed: step 'train': out of memory \\| twice");
        md.Should().Contain("| `better` | 0.611 | +0.306 | 2,000 tokens |");
        md.Should().Contain("| 2,000 | 0.000 | 0.917 (+0.917) |");
        md.Should().Contain("| ![base (baseline)](heatmap-01.png) | ![better](heatmap-02.png) |");
        md.Should().Contain("![better − baseline](difference-02.png)");
        md.Should().Contain("| 0-4K | `better` | 🔴 +0.020 | – |").And.Contain("| 4K-128K | `better` | – | 🟢 −0.100 |");
        md.Should().Contain("| 1,024 | 2.200 | 1.800 (🟢 −0.400) |");
        var json = JsonNode.Parse(File.ReadAllText(files.Json))!;
        json["runs"]![2]!["state"]!.GetValue<string>().Should().Be("failed");
        json["runs"]![2]!["needle"].Should().BeNull();
        json["runs"]![1]!["loss"]!["buckets"]![0]!["mark"]!.GetValue<string>().Should().Be("red");
    }

    [Fact]
    public void A_run_that_disabled_the_needle_shows_disabled_in_the_needle_table_and_takes_no_part_in_its_numbers()
    {
        var off = Run("r2", "off", "per-source", "0.001", [], Loss(2.020, 1.700, 1.5)) with { NeedleDisabled = true };
        var runs = new[] { Run("r1", "base", "none", "0.001", Grid(1000), Loss(2.000, 1.800, 1.9)), off, Run("r3", "on", "per-source", "0.003", Grid(1000, 2000), null) };

        var files = ComparisonMarkdown.Write(_dir, new ComparisonInput("t", runs));

        files.Comparison.Runs[1].Needle.Should().BeNull();
        files.Comparison.Runs[1].NeedleDisabled.Should().BeTrue();
        files.Comparison.Runs[1].Loss!.Buckets.Should().HaveCount(2, "its loss is compared as usual");
        files.Images.Select(Path.GetFileName).Should().Equal("heatmap-01.png", "heatmap-03.png", "difference-03.png");
        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain("| `off` | disabled | – | – |\n");
        md.Should().Contain("| `on` | 0.611 | +0.306 | 2,000 tokens |");
        md.Should().Contain("| context length | `base` (baseline) | `on` |", "the per-length table has no column for a run without results");
        md.Should().Contain("| 0-4K | `off` | 🔴 +0.020 | – |");
        var json = JsonNode.Parse(File.ReadAllText(files.Json))!;
        json["runs"]![1]!["needle"].Should().BeNull();
        json["runs"]![1]!["needle_disabled"]!.GetValue<bool>().Should().BeTrue();
        json["runs"]![0]!["needle_disabled"]!.GetValue<bool>().Should().BeFalse();
    }

    [Fact]
    public void A_disabled_baseline_gives_no_deltas_and_all_disabled_runs_say_so_once()
    {
        var baseline = Run("r1", "base", "none", "0.001", [], null) with { NeedleDisabled = true };
        var md = ComparisonMarkdown.Render(Workflows.Evaluation.Comparison.Comparison.Build(
            new ComparisonInput("t", [baseline, Run("r2", "on", "per-source", "0.001", Grid(1000), null)])), name => name);

        md.Should().Contain("| `base` (baseline) | disabled | – | – |").And.Contain("| `on` | 0.306 | – | 1,000 tokens |");
        md.Should().Contain("The baseline's needle evaluation is disabled").And.NotContain("difference-02.png");

        var none = ComparisonMarkdown.Render(Workflows.Evaluation.Comparison.Comparison.Build(
            new ComparisonInput("t", [baseline, Run("r2", "off", "per-source", "0.001", [], null) with { NeedleDisabled = true }])), name => name);
        none.Should().Contain("### Needle in a haystack\n\nDisabled (`evaluation.needle.enabled: false`) in `base` (baseline), `off`; no other run has needle results.")
            .And.NotContain("| experiment | mean |");
    }

    [Fact]
    public void Effective_length_is_the_longest_length_up_to_which_every_mean_stays_above_the_threshold()
    {
        IReadOnlyList<NeedleCellSummary> Cells(params double[] means) =>
            [.. means.Select((m, i) => new NeedleCellSummary(1000 * (i + 1), 0, m, 0, 1))];

        LongContextSummary.From(Cells(0.9, 0.9, 0.5, 0.9)).EffectiveLength.Should().Be(2000, "a recovery after a dip does not count");
        LongContextSummary.From(Cells(0.9, 0.9)).EffectiveLength.Should().Be(2000);
        var none = LongContextSummary.From(Cells(0.5, 0.9));
        none.EffectiveLength.Should().BeNull();
        none.DescribeEffectiveLength().Should().Be("none: 0.500 at 1,000 < 0.856");
        LongContextSummary.From(Cells(0.5, 0.9), threshold: 0.4).EffectiveLength.Should().Be(2000);
        LongContextSummary.From(Cells(0.856)).EffectiveLength.Should().Be(1000, "at the threshold counts as above");
    }
}
