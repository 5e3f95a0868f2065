using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.DataPrep.Tests;

/// <summary>The experiment's data section as data prep sees it, and statistics measured from the shipped sample.</summary>
public sealed class SpecMappingTests
{
    private static ExperimentSpec Spec(string dataExtra) => ExperimentLoader.LoadText("x.yaml", $$"""
        name: mapping
        profile: dev
        model: { base: tiny }
        data: { token_budget: 1M, context: 4K{{dataExtra}} }
        """, new LoadOptions(PolicyMode.Off)).Require();

    private static string RepositoryRoot()
    {
        var d = AppContext.BaseDirectory;
        while (d is not null && !File.Exists(Path.Combine(d, "Workflows.sln")))
        {
            d = Path.GetDirectoryName(d);
        }

        return d ?? throw new InvalidOperationException("Workflows.sln not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void Budget_rule_maps_to_the_released_overshoot_or_our_cut_to_fit()
    {
        var gpt2 = new Gpt2Tokenizer();
        SpecMapping.ToDataPrepOptions(Spec(""), gpt2).Overflow.Should().Be(BudgetOverflow.Truncate, "exact is the default");
        SpecMapping.ToDataPrepOptions(Spec(", budget_rule: exact"), gpt2).Overflow.Should().Be(BudgetOverflow.Truncate);
        SpecMapping.ToDataPrepOptions(Spec(", budget_rule: paper"), gpt2).Overflow.Should().Be(BudgetOverflow.Overshoot);
    }

    [Fact]
    public void Statistics_of_a_file_bin_every_non_empty_document_once_and_merge_by_sum()
    {
        var sample = InputFile.Discover([Path.Combine(RepositoryRoot(), "samples", "slimpajama-pd")]);
        var gpt2 = new Gpt2Tokenizer();
        using var workers = new MeasureWorkers(2);
        var indexes = sample.Select(f => CorpusMeasurer.MeasureLengths(f, new CorpusReaderOptions(), gpt2, workers, null, CancellationToken.None)).ToList();

        var perFile = indexes.Select(CorpusStatisticsBuilder.FromIndex).ToList();
        var corpus = CorpusStatistics.Merge("pd", perFile);

        corpus.Documents.Should().Be(indexes.Sum(i => i.Documents.Count(d => d.Tokens > 0)));
        corpus.Tokens.Should().Be(indexes.Sum(i => i.Documents.Sum(d => (long)d.Tokens)));
        corpus.Files.Select(f => f.Key).Should().Equal(sample.Select(f => f.Key).Order(StringComparer.Ordinal));
        foreach (var (source, lengths) in corpus.Sources)
        {
            lengths.Cells.Sum(c => c.Documents).Should().Be(lengths.Documents);
            lengths.Cells.Should().OnlyContain(c => c.Documents > 0 && c.Tokens >= c.Documents, source.ToString());
        }

        // JSON round trip (cells are written as arrays).
        var json = corpus.ToJson();
        json.Should().Contain("\"format\": \"wf-corpus-stats/1\"");
        System.Text.Json.JsonSerializer.Deserialize<CorpusStatistics>(json, CorpusStatistics.Json)!.ToJson().Should().Be(json);
    }
}
