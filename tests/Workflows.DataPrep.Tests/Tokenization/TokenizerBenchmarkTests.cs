using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Tests.Tokenization;

public sealed class TokenizerBenchmarkTests
{
    [CorpusFact]
    public void Counts_the_same_tokens_on_one_thread_and_on_several()
    {
        var tokenizer = LlamaSentencePieceTokenizer.Load(TokenizerTestData.LlamaModelPath);
        var texts = TokenizerTestData.ReadTexts(TokenizerTestData.ValidationFile);

        var single = TokenizerBenchmark.Measure(tokenizer, texts);
        var parallel = TokenizerBenchmark.Measure(tokenizer, texts, threads: 2);

        single.Tokens.Should().Be(609_932, "the golden README's total for the validation split");
        parallel.Tokens.Should().Be(single.Tokens);
        single.Documents.Should().Be(298);
        single.Characters.Should().Be(texts.Sum(t => (long)t.Length));
        single.TokensPerSecond.Should().BePositive();
    }
}
