using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;
using Workflows.Experiments.Spec;

using LengthMeasure = Workflows.DataPrep.Selection.LengthMeasure;

namespace Workflows.DataPrep.Tests;

/// <summary>Length indexes of the test corpus (GPT-2 tokens), measured once for the selection tests: the shared validation split, or its shape cut from samples/.</summary>
public sealed class ValidationIndexFixture : IDisposable
{
    private readonly TempFolder temp = new();

    public ValidationIndexFixture()
    {
        // Split the validation file into three inputs so plans span several files.
        var lines = SharedCorpus.ValidationLines;
        var parts = new[]
        {
            CorpusFiles.WriteZstd(temp.File("v0.jsonl.zst"), lines.Where((_, i) => i % 3 == 0)),
            CorpusFiles.WriteGzip(temp.File("v1.jsonl.gz"), lines.Where((_, i) => i % 3 == 1)),
            CorpusFiles.WriteJsonl(temp.File("v2.jsonl"), lines.Where((_, i) => i % 3 == 2)),
        };
        Inputs = InputFile.FromPaths(parts);
        IndexFolder = temp.File("index");
        Indexes = [.. Inputs.Select(f => CorpusMeasurer.Measure(f, new CorpusReaderOptions(), Tokenizer, IndexFolder, 2, null, default))];
    }

    public Gpt2TestTokenizer Tokenizer { get; } = new();

    public IReadOnlyList<InputFile> Inputs { get; } = [];

    public string IndexFolder { get; } = string.Empty;

    public IReadOnlyList<LengthIndex> Indexes { get; } = [];

    public void Dispose() => temp.Dispose();
}

public sealed class SelectionPlannerTests(ValidationIndexFixture fixture) : IClassFixture<ValidationIndexFixture>
{
    private static readonly DataPrepOptions Small = new() { ContextLength = 2048, SequencesPerShard = 8 };

    private PackingPlan Plan(DataPrepOptions options) => SelectionPlanner.Plan(fixture.Indexes, options, fixture.Tokenizer);

    private IEnumerable<DocumentLength> AllDocs => fixture.Indexes.SelectMany(i => i.Documents).Where(d => d.Tokens > 0);

    private static Dictionary<SlimPajamaSource, long> TokensBySource(PackingPlan plan) =>
        plan.Pieces.GroupBy(p => p.Source).ToDictionary(g => g.Key, g => g.Sum(p => (long)p.TokenCount));

    [Fact]
    public void Original_keeps_every_document_once_and_whole()
    {
        var plan = Plan(Small with { Mode = SelectionMode.Original });
        plan.Pieces.Should().HaveCount(AllDocs.Count());
        plan.Pieces.Sum(p => (long)p.TokenCount).Should().Be(AllDocs.Sum(d => (long)d.Tokens));
        plan.Pieces.Should().OnlyContain(p => p.TokenStart == 0 && p.Epoch == 0);
        plan.Pieces.Select(p => (p.File, p.Document)).Should().OnlyHaveUniqueItems();
        plan.StreamTokens.Should().Be(plan.Pieces.Sum(p => (long)p.TokenCount + 1)); // one BOS each
    }

    [Fact]
    public void Cut_at_4K_cuts_every_document_into_pieces_of_at_most_4096_tokens_with_their_BOS()
    {
        var plan = Plan(Small with { Mode = SelectionMode.CutAt4K });
        plan.Pieces.Should().OnlyContain(p => p.TokenCount + plan.PieceOverhead <= 4096);
        plan.Pieces.Sum(p => (long)p.TokenCount).Should().Be(AllDocs.Sum(d => (long)d.Tokens));
        var longest = AllDocs.Max(d => d.Tokens);
        plan.Pieces.Max(p => p.Piece).Should().Be((longest - 1) / 4095);

        // Pieces of one document are scattered, not adjacent.
        var order = plan.Pieces.Select((p, i) => (p, i)).Where(x => x.p.Piece <= 1).GroupBy(x => (x.p.File, x.p.Document))
            .Where(g => g.Count() == 2).Select(g => Math.Abs(g.First().i - g.Last().i)).ToList();
        order.Should().NotBeEmpty();
        order.Average().Should().BeGreaterThan(5);
    }

    [Fact]
    public void Global_keeps_every_long_document_and_about_keep_ratio_of_short_ones_whatever_the_source()
    {
        var options = Small with { Mode = SelectionMode.Global, ShortKeepRatio = 0.3 };
        var plan = Plan(options);
        var kept = plan.Pieces.Select(p => fixture.Indexes[p.File].Documents[p.Document]).ToList();
        var isLong = (DocumentLength d) => d.Chars / 3.68 >= 4096;
        kept.Count(isLong).Should().Be(AllDocs.Count(isLong));
        var shortTotal = AllDocs.Count(d => !isLong(d));
        var fraction = (double)kept.Count(d => !isLong(d)) / shortTotal;
        var sigma = Math.Sqrt(0.3 * 0.7 / shortTotal);
        fraction.Should().BeInRange(0.3 - (4 * sigma), 0.3 + (4 * sigma));
    }

    // The validation split is small (≈0.6M tokens, per-source budgets of a few thousand tokens), so the selection
    // tests scale the long threshold down to 512 tokens to keep budgets well above it, as they are at 5B tokens.
    private static readonly DataPrepOptions PerSourceSmall = Small with { LengthMeasure = LengthMeasure.ExactTokens, LongThreshold = 512 };

    [Fact]
    public void Per_source_lands_on_the_natural_mix_and_raises_each_sources_long_share()
    {
        var plan = Plan(PerSourceSmall);
        var stats = DataPrepStatistics.From(plan);
        foreach (var s in stats.After.Sources)
        {
            s.TokenShare.Should().BeApproximately(s.RequestedShare!.Value, 0.01, s.Source);
        }

        var raised = 0;
        foreach (var (before, after) in stats.Before.Sources.Zip(stats.After.Sources))
        {
            if (before.LongTokenShare < 0.8 && plan.Budget * after.RequestedShare!.Value >= 4 * 512)
            {
                after.LongTokenShare.Should().BeGreaterThan(before.LongTokenShare + 0.1, before.Source);
                raised++;
            }
        }

        raised.Should().BeGreaterThanOrEqualTo(2, "CommonCrawl and C4 are mostly short at this threshold");
    }

    [Fact]
    public void Per_source_budget_given_is_met_per_source_and_overshoot_mode_only_passes_it_by_one_document()
    {
        const long budget = 60_000;
        var truncated = Plan(PerSourceSmall with { TokenBudget = budget, ShortKeepRatio = 1.0 });
        foreach (var (source, tokens) in TokensBySource(truncated))
        {
            // Met to the token, or short by less than one long document the source could not cut below 512.
            var target = budget * truncated.RequestedMix![source];
            tokens.Should().BeInRange((long)Math.Floor(target) - 512, (long)Math.Ceiling(target) + 1, source.ToString());
        }

        var released = Plan(Small with { LengthMeasure = LengthMeasure.ExactTokens, TokenBudget = budget, ShortKeepRatio = 1.0, Overflow = BudgetOverflow.Overshoot });
        var mix = released.RequestedMix!;
        var bySource = TokensBySource(released);
        foreach (var (source, tokens) in bySource)
        {
            var target = budget * mix[source];
            var largest = released.Pieces.Where(p => p.Source == source).Max(p => p.TokenCount);
            tokens.Should().BeGreaterThanOrEqualTo((long)Math.Floor(target), source.ToString());
            tokens.Should().BeLessThan((long)Math.Ceiling(target) + largest, source.ToString());
        }
    }

    [Fact]
    public void Upsample_presets_give_the_released_combined_weights_and_single_source_shares()
    {
        var combined = Plan(PerSourceSmall with { Mode = SelectionMode.Upsample });
        combined.RequestedMix![SlimPajamaSource.Book].Should().BeApproximately(0.2251, 0.0001);
        var shares = DataPrepStatistics.From(combined).After.Sources.ToDictionary(s => s.Source, s => s.TokenShare);
        shares["RedPajamaGithub"].Should().BeApproximately(0.2251, 0.01);
        shares["RedPajamaArXiv"].Should().BeApproximately(0.2251, 0.01);
        shares["RedPajamaBook"].Should().BeApproximately(0.2251, 0.01);

        var bookUp = Plan(PerSourceSmall with
        {
            Mode = SelectionMode.Upsample,
            UpsampleWeights = UpsamplePresets.Single(SlimPajamaSource.Book, 0.55),
        });
        var bookShare = DataPrepStatistics.From(bookUp).After.Sources.Single(s => s.Source == "RedPajamaBook").TokenShare;
        bookShare.Should().BeApproximately(0.55, 0.01);
    }

    [Fact]
    public void Target_long_fraction_is_met_per_source_from_the_measured_lengths()
    {
        var plan = Plan(PerSourceSmall with { TargetLongFraction = 0.7 });
        var stats = DataPrepStatistics.From(plan);
        foreach (var (before, after) in stats.Before.Sources.Zip(stats.After.Sources))
        {
            var expected = Math.Max(0.7, before.LongTokenShare);

            // Less than one threshold's worth of a source's long quota may go to short documents.
            var granularity = 512 / (plan.Budget * after.RequestedShare!.Value);
            after.LongTokenShare.Should().BeInRange(expected - granularity - 0.01, expected + 0.01, before.Source);
            after.TokenShare.Should().BeApproximately(after.RequestedShare!.Value, 0.002, before.Source);
        }
    }

    [Fact]
    public void Plans_depend_on_seed_but_not_on_input_order()
    {
        var a = Plan(Small with { Mode = SelectionMode.Global });
        var reversed = SelectionPlanner.Plan([.. fixture.Indexes.Reverse()], Small with { Mode = SelectionMode.Global }, fixture.Tokenizer);
        reversed.PlanId.Should().Be(a.PlanId);
        reversed.Pieces.Should().Equal(a.Pieces);

        var other = Plan(Small with { Mode = SelectionMode.Global, Seed = 42 });
        other.PlanId.Should().NotBe(a.PlanId);
        other.Pieces.Should().NotEqual(a.Pieces);
    }

    [Fact]
    public void Repeats_are_allowed_only_with_more_epochs()
    {
        var total = AllDocs.Sum(d => (long)d.Tokens);
        var once = Plan(Small with { Mode = SelectionMode.Original, LengthMeasure = LengthMeasure.ExactTokens, TokenBudget = total * 2 });
        once.Pieces.Sum(p => (long)p.TokenCount).Should().Be(total);

        var twice = Plan(Small with { Mode = SelectionMode.Original, LengthMeasure = LengthMeasure.ExactTokens, TokenBudget = total * 2, MaxEpochs = 2 });
        twice.Pieces.Sum(p => (long)p.TokenCount).Should().BeInRange(2 * total - 1, 2 * total);
        twice.Pieces.Count(p => p.Epoch == 1).Should().Be(AllDocs.Count());
    }

    [Fact]
    public void A_source_with_weight_but_no_documents_is_a_clear_error()
    {
        var mix = SlimPajama.NaturalMix.ToDictionary(kv => kv.Key, kv => kv.Value);
        var withoutBooks = fixture.Indexes.Select(i => new LengthIndex(i.Header, [.. i.Documents.Where(d => d.Source != SlimPajamaSource.Book)])).ToList();
        var act = () => SelectionPlanner.Plan(withoutBooks, Small with { Mix = mix }, fixture.Tokenizer);
        act.Should().Throw<ArgumentException>().WithMessage("*Book*");
    }
}
