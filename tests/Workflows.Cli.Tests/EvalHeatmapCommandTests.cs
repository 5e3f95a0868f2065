using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// wf eval heatmap takes what the rest of wf writes: scorer names as the result files and experiment files spell them
/// (word-recall, rouge1, ...) and the training length as data.context is written (80K).
/// </summary>
public sealed class EvalHeatmapCommandTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-heatmap-").FullName;

    public EvalHeatmapCommandTests()
    {
        foreach (var length in new long[] { 1000, 2000 })
        {
            foreach (var depth in new[] { 0.0, 100.0 })
            {
                var recall = depth == 0 ? 1.0 : 0.5;
                var result = new NeedleResult
                {
                    Model = "heatmap-test",
                    ContextLength = length,
                    DepthPercent = depth,
                    Needle = "needle",
                    ModelResponse = "response",
                    Score = recall,
                    Scorer = NeedleScorers.Name(NeedleScoreKind.WordRecall),
                    TestDurationSeconds = 0.1,
                    TestTimestampUtc = "2026-12-04 00:00:00+0000",
                    Scores = Enum.GetValues<NeedleScoreKind>().ToDictionary(NeedleScorers.Name, k => recall * NeedleScorers.Scale(k)),
                };
                NeedleResultFiles.WriteAtomically(Path.Combine(temp, NeedleResultFiles.FileName(result.Model, new NeedleCell(length, (int)depth, 0))), result);
            }
        }
    }

    public void Dispose() => Directory.Delete(temp, recursive: true);

    [Fact]
    public void Scorer_names_and_size_literals_as_experiment_files_write_them()
    {
        var png = Path.Combine(temp, "rouge1.png");
        var (exit, stdout, stderr) = Wf("eval", "heatmap", temp, "--out", png, "--scorer", "rouge1", "--training-length", "80K");

        exit.Should().Be(0, stderr);
        stdout.Should().Contain("(4 cells, rouge1, training length 81,920)");
        new FileInfo(png).Length.Should().BeGreaterThan(0);
    }

    [Fact]
    public void Enum_names_and_plain_integers_still_work_and_word_recall_is_the_default()
    {
        var fixedRecall = Wf("eval", "heatmap", temp, "--out", Path.Combine(temp, "a.png"), "--scorer", "WordRecallFixed", "--training-length", "81920");
        fixedRecall.Exit.Should().Be(0, fixedRecall.Err);
        fixedRecall.Out.Should().Contain("word-recall-fixed, training length 81,920");

        var plain = Wf("eval", "heatmap", temp, "--out", Path.Combine(temp, "b.png"));
        plain.Exit.Should().Be(0, plain.Err);
        plain.Out.Should().Contain("(4 cells, word-recall)");
    }

    [Theory]
    [InlineData("--scorer", "sideways", "use one of word-recall, rouge1, word-recall-fixed, string-match-all")]
    [InlineData("--training-length", "80Q", "'80Q' is not a size")]
    [InlineData("--training-length", "0", "'0' is not a positive length")]
    public void A_value_it_cannot_read_is_a_usage_error_that_names_it(string option, string value, string message)
    {
        var png = Path.Combine(temp, "bad.png");
        var (exit, _, stderr) = Wf("eval", "heatmap", temp, "--out", png, option, value);

        exit.Should().Be(2);
        stderr.Should().Contain(message);
        File.Exists(png).Should().BeFalse();
    }
}
