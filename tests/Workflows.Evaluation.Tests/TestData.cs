using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;

namespace Workflows.Evaluation.Tests;

/// <summary>Finds the shared corpus and the repository's samples, and hands out the real tokenizers.</summary>
internal static class TestData
{
    public static string? CorpusRoot => TestCorpus.SharedRoot;

    private static readonly Lazy<LlamaSentencePieceTokenizer> Llama = new(() => LlamaSentencePieceTokenizer.Load(LlamaModelPath));
    private static readonly Lazy<Gpt2Tokenizer> Gpt2Instance = new(() => new Gpt2Tokenizer());

    public static string Corpus => CorpusRoot ?? throw new InvalidOperationException(TestCorpus.MissingReason);

    public static string LlamaModelPath => Path.Combine(Corpus, "tokenizers", "llama2", "tokenizer.model");

    public static string PaulGrahamEssays => Path.Combine(Corpus, "haystack", "PaulGrahamEssays");

    /// <summary>The public-domain default haystack shipped in samples/haystack.</summary>
    public static string SampleHaystack =>
        FindAbove(Path.Combine("samples", "haystack")) ?? throw new InvalidOperationException("samples/haystack not found above the test assembly");

    public static LlamaSentencePieceTokenizer LlamaTokenizer => Llama.Value;

    public static Gpt2Tokenizer Gpt2 => Gpt2Instance.Value;

    /// <summary>A word-recall result of the paper's needle for one cell, with every scorer's value (in the paper's haystack unless told).</summary>
    public static NeedleResult NeedleResult(long length, int depth, string response, int trial = 0, string haystack = KnownHaystacks.PaulGrahamEssaysSha256) => new()
    {
        Haystack = haystack,
        Model = "m",
        ContextLength = length,
        DepthPercent = depth,
        Needle = PaperNeedle.Needle,
        ModelResponse = response,
        Score = NeedleScorers.Score(NeedleScoreKind.WordRecall, response, NeedleTask.Paper),
        Scorer = "word-recall",
        TestDurationSeconds = 0.1,
        TestTimestampUtc = "2025-01-01 00:00:00+0000",
        Trial = trial,
        Scores = NeedleScorers.All(response, NeedleTask.Paper),
    };

    public static string NewTempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wf-eval-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string? FindAbove(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, relative);
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
