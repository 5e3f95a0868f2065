using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

/// <summary>data.corpus without data.paths: any valid corpus id validates (registration lives in the engine's store).</summary>
public sealed class CorpusRuleTests
{
    private static LoadResult LoadSmokeWith(string dataSourceLine)
    {
        var yaml = File.ReadAllText(Path.Combine(RepoPaths.Experiments, "smoke.yaml"));
        const string paths = "  paths: [../samples/slimpajama-pd/sample.jsonl.zst]";
        yaml.Should().Contain(paths);
        return ExperimentLoader.LoadText("smoke-corpus.yaml", yaml.Replace(paths, dataSourceLine, StringComparison.Ordinal), new LoadOptions(WorkflowsDirectory: RepoPaths.Workflows));
    }

    [Theory]
    [InlineData("  corpus: sample")]
    [InlineData("  corpus: team-books-2024")]
    [InlineData("  corpus: slimpajama")]
    [InlineData("")]
    public void A_valid_corpus_id_without_paths_validates(string line)
    {
        var result = LoadSmokeWith(line);

        result.Diagnostics.Should().BeEmpty();
    }

    [Theory]
    [InlineData("  corpus: ../escape")]
    [InlineData("  corpus: Books")]
    [InlineData("  corpus: a/b")]
    public void A_corpus_id_outside_the_pattern_is_refused_at_data_corpus(string line)
    {
        var result = LoadSmokeWith(line);

        result.Diagnostics.Should().ContainSingle().Which.Path.Should().Be("data.corpus");
    }
}
