using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Tests.Tokenization;

/// <summary>Runs only from bench-vs-spm.sh, which prepares the train split as a text file and compares with spm_encode.</summary>
public sealed class TokenizerSpeedTests
{
    public const string LinesVariable = "WF_TOKENIZER_BENCH_LINES";

    [BenchmarkFact(NeedsCorpus = true, NeedsFile = LinesVariable)]
    [Trait("Category", "Benchmark")]
    public void Measure_single_thread_speed_on_the_train_split()
    {
        var corpus = Environment.GetEnvironmentVariable("WF_SPM_CORPUS") is { Length: > 0 } c ? c : TokenizerTestData.Corpus;
        var model = Path.Combine(corpus, "tokenizers", "llama2", "tokenizer.model");
        var lines = File.ReadAllText(Environment.GetEnvironmentVariable(LinesVariable)!).Split('\n');
        var documents = Directory.GetFiles(Path.Combine(corpus, "slimpajama-mini", "train"), "*.jsonl.zst")
            .Order(StringComparer.Ordinal).SelectMany(TokenizerTestData.ReadTexts).ToList();

        // a fresh tokenizer per measurement: its word cache starts empty, so warm-up is part of the number
        var perLine = TokenizerBenchmark.Measure(LlamaSentencePieceTokenizer.Load(model), lines);
        var perDocument = TokenizerBenchmark.Measure(LlamaSentencePieceTokenizer.Load(model), documents);
        var uncached = TokenizerBenchmark.Measure(LlamaSentencePieceTokenizer.Load(model, segmentCacheCapacity: 0), documents);
        var twoThreads = TokenizerBenchmark.Measure(LlamaSentencePieceTokenizer.Load(model), documents, threads: 2);

        File.WriteAllLines(Environment.GetEnvironmentVariable("WF_TOKENIZER_BENCH_OUT") ?? "/dev/stdout",
        [
            $"lines (spm_encode's unit), cold cache: {perLine}",
            $"documents, cold cache: {perDocument}",
            $"documents, word cache off: {uncached}",
            $"documents, 2 threads (only 1 core if pinned): {twoThreads}",
        ]);
        perDocument.Tokens.Should().Be(uncached.Tokens);
    }
}
