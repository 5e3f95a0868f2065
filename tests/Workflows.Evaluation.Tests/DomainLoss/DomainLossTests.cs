using Workflows.Evaluation.DomainLoss;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Tests.DomainLoss;

public sealed class DomainLossTests
{
    [Theory]
    [InlineData("per-source-5b-80k", PaperMixture.PerSource, true)]
    [InlineData("per-source-10b-80k", PaperMixture.PerSource, false)]
    [InlineData("original-5b-80k", PaperMixture.Original, true)]
    [InlineData("global-5b-80k", PaperMixture.Global, true)]
    [InlineData("code-up-5b-80k", PaperMixture.CodeUp, true)]
    [InlineData("book-up-5b-80k", PaperMixture.BookUp, true)]
    [InlineData("arxiv-up-5b-80k", PaperMixture.ArxivUp, true)]
    public void Experiments_match_their_table5_row(string name, PaperMixture row, bool exact)
    {
        PaperNumbers.MatchExperiment(name, out var isExact).Should().Be(row);
        isExact.Should().Be(exact);
    }

    [Theory]
    [InlineData("code-arxiv-book-up-5b-80k")]
    [InlineData("smoke")]
    [InlineData("originals")]
    public void Other_experiments_have_no_paper_row(string name) => PaperNumbers.MatchExperiment(name, out _).Should().BeNull();

    [Fact]
    public void Table5_values_are_the_papers()
    {
        PaperNumbers.Table5("0-4K", PaperMixture.Original, SlimPajamaSource.C4).Should().Be(2.038);
        PaperNumbers.Table5("0-4K", PaperMixture.BookUp, SlimPajamaSource.Book).Should().Be(-0.175);
        PaperNumbers.Table5("4K-128K", PaperMixture.Original, SlimPajamaSource.Github).Should().Be(0.447);
        PaperNumbers.Table5("4K-128K", PaperMixture.PerSource, SlimPajamaSource.Wikipedia).Should().Be(-0.044);
        PaperNumbers.Table5("4K-128K", PaperMixture.BookUp, SlimPajamaSource.Book).Should().Be(-0.030);
        PaperNumbers.Table5("1K-2K", PaperMixture.Original, SlimPajamaSource.C4).Should().BeNull();
        new LengthBucket(0, 4096).ToString().Should().Be("0-4K", "spec buckets print as Table 5's keys");
        new LengthBucket(4096, 131072).ToString().Should().Be("4K-128K");
    }

    [Theory]
    [InlineData(0.011, DeltaMark.Red)]
    [InlineData(0.0101, DeltaMark.Red)]
    [InlineData(0.01, DeltaMark.Grey)]
    [InlineData(0.0, DeltaMark.Grey)]
    [InlineData(-0.01, DeltaMark.Grey)]
    [InlineData(-0.0101, DeltaMark.Green)]
    public void Deltas_are_coloured_by_the_papers_rule(double delta, DeltaMark mark) => DomainLossTable.MarkOf(delta).Should().Be(mark);

    [Fact]
    public void Comparison_rows_put_our_delta_beside_the_papers()
    {
        var run = new DomainLossReport("per-source-5b-80k",
            [new("0-4K", SlimPajamaSource.Book, 2.000, 1000), new("0-4K", SlimPajamaSource.C4, 2.050, 500), new("4K-128K", SlimPajamaSource.C4, 1.540, 900)], []);
        var baseline = new DomainLossReport("original-5b-80k",
            [new("0-4K", SlimPajamaSource.Book, 2.100, 1000), new("0-4K", SlimPajamaSource.C4, 2.038, 500), new("4K-128K", SlimPajamaSource.C4, 1.545, 900)], []);
        var rows = DomainLossTable.Compare(run, baseline, PaperMixture.PerSource);

        rows.Select(r => (r.Bucket, r.Source)).Should().Equal(("0-4K", SlimPajamaSource.C4), ("0-4K", SlimPajamaSource.Book), ("4K-128K", SlimPajamaSource.C4));
        rows[0].Delta.Should().BeApproximately(0.012, 1e-12);
        rows[0].Mark.Should().Be(DeltaMark.Red);
        rows[0].PaperOriginal.Should().Be(2.038);
        rows[0].PaperDelta.Should().Be(0.002);
        rows[0].PaperMark.Should().Be(DeltaMark.Grey);
        rows[1].Mark.Should().Be(DeltaMark.Green);
        rows[1].PaperDelta.Should().Be(-0.065);
        rows[2].Mark.Should().Be(DeltaMark.Grey);

        var markdown = DomainLossTable.ToMarkdown(rows, "original-5b-80k", PaperMixture.PerSource);
        markdown.Should().Contain("| 0-4K | C4 | 2.050 | 500 | 2.038 | 🔴 +0.012 | 2.038 | ⚪ +0.002 |");
        markdown.Should().Contain("| 0-4K | Book | 2.000 | 1,000 | 2.100 | 🟢 −0.100 | 2.085 | 🟢 −0.065 |");
        markdown.Should().Contain("| 4K-128K | C4 | 1.540 | 900 | 1.545 | ⚪ −0.005 | 1.560 | ⚪ −0.010 |");
    }

    [Fact]
    public void Accumulator_averages_target_positions_by_bucket_and_packed_length()
    {
        var acc = new DomainLossAccumulator([new LengthBucket(0, 4), new LengthBucket(4, 8)]);
        // 9 ids (BOS + 8): targets t = 1..8 with losses 1..8. [0,4) takes t = 1,2,3; [4,8) takes t = 4..7; t = 8 none.
        acc.AddDocument(SlimPajamaSource.Book, [1, 2, 3, 4, 5, 6, 7, 8]);
        // 3 ids: targets t = 1, 2 → bucket [0,4) only.
        acc.AddDocument(SlimPajamaSource.Book, [10, 20]);
        acc.AddPackedSequence(SlimPajamaSource.C4, 4, [1, 2, 6]);
        acc.AddPackedSequence(SlimPajamaSource.C4, 4, [3, 3, 3]);
        var act = () => acc.AddPackedSequence(SlimPajamaSource.C4, 4, [1, 2]);
        act.Should().Throw<ArgumentException>();

        var report = acc.ToReport("x");
        report.Buckets.Should().Equal(
            new DomainLossEntry("0-4", SlimPajamaSource.Book, 36.0 / 5, 5),
            new DomainLossEntry("4-8", SlimPajamaSource.Book, 22.0 / 4, 4));
        report.Lengths.Should().Equal(new LengthLossEntry(4, SlimPajamaSource.C4, 18.0 / 6, 6));
        report.OverallAt(4).Should().Be(3.0);
    }

    [Fact]
    public void Sequences_are_documents_with_bos_or_packed_streams()
    {
        DomainLossSequences.Documents([[5, 6, 7], [8], []], bos: 1, maxLength: 3).Should()
            .BeEquivalentTo(new[] { new[] { 1, 5, 6 }, new[] { 1, 8 } }, o => o.WithStrictOrdering());
        DomainLossSequences.Packed([[5, 6, 7], [8, 9]], bos: 1, length: 3).Should()
            .BeEquivalentTo(new[] { new[] { 1, 5, 6 }, new[] { 7, 1, 8 } }, o => o.WithStrictOrdering());
        DomainLossSequences.Packed([[5, 6, 7], [8, 9]], bos: null, length: 2).Should()
            .BeEquivalentTo(new[] { new[] { 5, 6 }, new[] { 7, 8 } }, o => o.WithStrictOrdering());
    }
}
