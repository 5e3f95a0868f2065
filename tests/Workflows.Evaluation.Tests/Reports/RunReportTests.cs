using System.Text.Json;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Reports;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Tests.Reports;

public sealed class RunReportTests : IDisposable
{
    private readonly string _dir = TestData.NewTempDirectory();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static NeedleResult Result(long length, int depth, string response, int trial = 0, string haystack = KnownHaystacks.PaulGrahamEssaysSha256) =>
        TestData.NeedleResult(length, depth, response, trial, haystack);

    [Fact]
    public void Report_has_heatmaps_mean_loss_table_and_paper_numbers_in_markdown_and_json()
    {
        const string right = "eat a sandwich and sit in Dolores Park on a sunny day.";
        var needle = new List<NeedleResult>
        {
            Result(1000, 0, right), Result(1000, 100, right), Result(2000, 0, "no idea"), Result(2000, 100, right),
        };
        var baselineNeedle = needle.Select(r => r with { ModelResponse = "no idea", Score = 0, Scores = NeedleScorers.All("no idea", NeedleTask.Paper) }).ToList();
        var loss = new DomainLossReport("per-source-5b-80k",
            [new("0-4K", SlimPajamaSource.C4, 2.050, 500), new("4K-128K", SlimPajamaSource.Book, 1.800, 700)],
            [new LengthLossEntry(1024, SlimPajamaSource.C4, 1.9, 100), new LengthLossEntry(1024, SlimPajamaSource.Book, 1.7, 300)]);
        var baselineLoss = new DomainLossReport("original-5b-80k",
            [new("0-4K", SlimPajamaSource.C4, 2.038, 500), new("4K-128K", SlimPajamaSource.Book, 1.852, 700)], []);

        var files = RunReport.Write(_dir, new RunReportInput("per-source-5b-80k", "original-5b-80k", "tiny", NeedleScoreKind.WordRecall,
            needle, baselineNeedle, loss, baselineLoss, TrainingLength: 1500, TokenBudget: 5_000_000_000));

        File.Exists(files.Heatmap).Should().BeTrue();
        File.Exists(files.DifferenceHeatmap).Should().BeTrue();
        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain("Model `tiny` · baseline `original-5b-80k`\n");
        md.Should().Contain("![needle heatmap](needle-heatmap.png)");
        md.Should().Contain("![difference heatmap](needle-difference.png)");
        // three of four results at 11/12 (visualize.py's maximum), one at 0: mean = 33/48 = 0.6875.
        md.Should().Contain("**0.688** = 68.8 %");
        // 1,000: both cells 11/12 ≥ 0.856; 2,000: (0 + 11/12) / 2 = 0.458 < 0.856.
        md.Should().Contain("Effective length (RULER-style: the longest length up to which every length's mean is ≥ 0.856): **1,000 tokens**.");
        md.Should().Contain("Paper: Fig. 3, per-source, 5B tokens, 7B at 80K: **88.0**");
        md.Should().Contain("Table 5 row **Per-source** (same setting");
        md.Should().Contain("| 0-4K | C4 | 2.050 | 500 | 2.038 | 🔴 +0.012 | 2.038 | ⚪ +0.002 |");
        md.Should().Contain("| 4K-128K | Book | 1.800 | 700 | 1.852 | 🟢 −0.052 | 1.852 | 🟢 −0.014 |");
        // Loss@1K over sources, token-weighted: (1.9·100 + 1.7·300) / 400 = 1.75; the paper's per-source 5B value 1.80.
        md.Should().Contain("| 1,024 | 1.750 | – | 1.80 |");

        using var json = JsonDocument.Parse(File.ReadAllText(files.Json));
        var root = json.RootElement;
        root.GetProperty("paper_row").GetString().Should().Be("Per-source");
        root.GetProperty("needle").GetProperty("state").GetString().Should().Be(EvaluationState.Evaluated);
        root.GetProperty("needle").GetProperty("mean").GetDouble().Should().BeApproximately(0.6875, 1e-12);
        root.GetProperty("needle").GetProperty("baseline_mean").GetDouble().Should().Be(0);
        root.GetProperty("needle").GetProperty("means_by_scorer").GetProperty("word-recall-fixed").GetDouble().Should().BeApproximately(0.75, 1e-12);
        root.GetProperty("needle").GetProperty("cells").GetArrayLength().Should().Be(4);
        root.GetProperty("needle").GetProperty("effective_length").GetInt64().Should().Be(1000);
        root.GetProperty("needle").GetProperty("effective_length_threshold").GetDouble().Should().Be(0.856);
        root.GetProperty("needle").GetProperty("per_length")[1].GetProperty("mean").GetDouble().Should().BeApproximately(11.0 / 24, 1e-12);
        root.GetProperty("loss").GetProperty("rows")[0].GetProperty("delta").GetDouble().Should().BeApproximately(0.012, 1e-12);
        root.GetProperty("loss").GetProperty("rows")[0].GetProperty("mark").GetString().Should().Be("red");
        root.GetProperty("loss").GetProperty("overall_at").GetProperty("1024").GetDouble().Should().BeApproximately(1.75, 1e-12);
    }

    [Theory]
    [InlineData(KnownHaystacks.PublicDomainSampleSha256, "wf's public-domain sample")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "a custom haystack")]
    [InlineData("", "not recorded")]
    public void Report_names_the_haystack_and_compares_with_the_paper_only_on_its_essays(string haystack, string name)
    {
        const string right = "eat a sandwich and sit in Dolores Park on a sunny day.";
        var needle = new List<NeedleResult> { Result(1000, 0, right, haystack: haystack), Result(1000, 100, right, haystack: haystack) };
        var files = RunReport.Write(_dir, new RunReportInput("per-source-5b-80k", null, "tiny", NeedleScoreKind.WordRecall, needle,
            TrainingLength: 1500, TokenBudget: 5_000_000_000));

        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain($"Haystack: {name}");
        md.Should().NotContain("Paper: Fig. 3");
        md.Should().Contain("Not compared with the paper (Fig. 3, per-source, 5B tokens, 7B at 80K: 88.0): its numbers are for Paul Graham's essays.");
        using var json = JsonDocument.Parse(File.ReadAllText(files.Json));
        var n = json.RootElement.GetProperty("needle");
        n.GetProperty("paper").ValueKind.Should().Be(JsonValueKind.Null);
        n.GetProperty("haystack").GetProperty("sha256").GetString().Should().Be(haystack);
        n.GetProperty("haystack").GetProperty("paper_haystack").GetBoolean().Should().BeFalse();
    }

    [Fact]
    public void Report_on_the_essays_names_them_and_shows_the_paper_number()
    {
        const string right = "eat a sandwich and sit in Dolores Park on a sunny day.";
        var files = RunReport.Write(_dir, new RunReportInput("per-source-5b-80k", null, "tiny", NeedleScoreKind.WordRecall,
            [Result(1000, 0, right)], TokenBudget: 5_000_000_000));

        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain("Haystack: Paul Graham's essays (the paper's haystack) (sha256 `f3ff48e417bd`).");
        md.Should().Contain("Paper: Fig. 3, per-source, 5B tokens, 7B at 80K: **88.0**");
        using var json = JsonDocument.Parse(File.ReadAllText(files.Json));
        json.RootElement.GetProperty("needle").GetProperty("haystack").GetProperty("paper_haystack").GetBoolean().Should().BeTrue();
    }

    [Fact]
    public void A_disabled_needle_evaluation_is_reported_as_disabled_without_numbers_and_the_loss_is_still_reported()
    {
        // A per-source 5B run: with needle results the report would show the paper's Fig. 3 needle number and the baseline's Δ.
        var loss = new DomainLossReport("per-source-5b-80k", [new("0-4K", SlimPajamaSource.C4, 2.050, 500)], [new LengthLossEntry(1024, SlimPajamaSource.C4, 1.9, 100)]);
        var baselineNeedle = new List<NeedleResult> { Result(1000, 0, "no idea") };

        var files = RunReport.Write(_dir, new RunReportInput("per-source-5b-80k", "original-5b-80k", "tiny", NeedleScoreKind.WordRecall, null, baselineNeedle, loss,
            TrainingLength: 1500, TokenBudget: 5_000_000_000));

        files.Heatmap.Should().BeNull();
        files.DifferenceHeatmap.Should().BeNull();
        Directory.GetFiles(_dir, "*.png").Should().BeEmpty();
        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain("## Needle in a haystack\n\nDisabled (`evaluation.needle.enabled: false`): no grid was run");
        md.Should().NotContain("Mean score").And.NotContain("Effective length").And.NotContain("Fig. 3, per-source, 5B tokens, 7B at 80K: **88.0**").And.NotContain("| context length |");
        md.Should().Contain("| 0-4K | C4 | 2.050 | 500 |").And.Contain("## Loss@N (Fig. 3)");
        using var json = JsonDocument.Parse(File.ReadAllText(files.Json));
        var needle = json.RootElement.GetProperty("needle");
        needle.GetProperty("state").GetString().Should().Be(EvaluationState.Disabled);
        needle.EnumerateObject().Select(p => p.Name).Should().Equal("state");
        json.RootElement.GetProperty("loss").GetProperty("rows")[0].GetProperty("loss").GetDouble().Should().Be(2.050);
    }

    [Fact]
    public void The_report_step_entry_point_reads_no_needle_folder_when_the_evaluation_was_disabled()
    {
        var lossFile = Path.Combine(_dir, "loss.json");
        DomainLossJson.Write(lossFile, new DomainLossReport("smoke", [new("0-4K", SlimPajamaSource.Github, 0.9, 10)], []));

        var files = RunReport.Write(Path.Combine(_dir, "report"), new Workflows.Experiments.Templates.ReportParameters("smoke", "tiny", NeedleScorer.WordRecall, 1024, 64_000),
            new ReportSources(null, lossFile));

        File.ReadAllText(files.Markdown).Should().Contain("Disabled (`evaluation.needle.enabled: false`)").And.Contain("| 0-4K | Github | 0.900 |");
        var enabled = () => RunReport.Write(Path.Combine(_dir, "r2"), new Workflows.Experiments.Templates.ReportParameters("smoke", "tiny", NeedleScorer.WordRecall, 1024, 64_000),
            new ReportSources(Path.Combine(_dir, "no-such-needle"), lossFile));
        enabled.Should().Throw<DirectoryNotFoundException>("an enabled evaluation without results is an error, never a disabled one");
    }

    [Fact]
    public void Report_without_needle_or_baseline_still_writes_the_loss_table()
    {
        var loss = new DomainLossReport("smoke", [new("0-4K", SlimPajamaSource.Github, 0.9, 10)], []);
        var files = RunReport.Write(_dir, new RunReportInput("smoke", null, "tiny", NeedleScoreKind.Rouge1, [], Loss: loss));
        files.Heatmap.Should().BeNull();
        var md = File.ReadAllText(files.Markdown);
        md.Should().Contain("| 0-4K | Github | 0.900 | 10 | – | – | 0.907 | – |");
        md.Should().NotContain("Needle in a haystack");
        using var json = JsonDocument.Parse(File.ReadAllText(files.Json));
        json.RootElement.GetProperty("needle").ValueKind.Should().Be(JsonValueKind.Null, "no results and not disabled: nothing to say");
    }
}
