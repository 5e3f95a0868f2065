using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Tests.Tokenization;

public sealed class TokenizerFactoryTests
{
    [Theory]
    [InlineData("gpt2")]
    [InlineData("GPT2")]
    public void Gpt2_spec_gives_the_GPT_2_tokenizer(string spec)
    {
        var tokenizer = TokenizerFactory.Create(spec);

        tokenizer.Should().BeOfType<Gpt2Tokenizer>();
        tokenizer.Id.Should().Be("gpt2");
    }

    [CorpusFact]
    public void A_model_path_gives_the_LLaMA_tokenizer_identified_by_the_file_hash()
    {
        var tokenizer = TokenizerFactory.Create(TokenizerTestData.LlamaModelPath);

        tokenizer.Should().BeOfType<LlamaSentencePieceTokenizer>();
        tokenizer.Id.Should().MatchRegex("^llama2-sp:[0-9a-f]{12}$");
        var ids = new List<int>();
        tokenizer.Encode("Hello world", ids);
        ids.Should().Equal(15043, 3186);
    }

    [Fact]
    public void A_spec_that_is_neither_gpt2_nor_a_file_is_refused_with_the_spec_in_the_message()
    {
        var act = () => TokenizerFactory.Create("/no/such/tokenizer.model");

        act.Should().Throw<FileNotFoundException>().WithMessage("*'/no/such/tokenizer.model'*gpt2*");
    }

    [Fact]
    public void A_file_that_is_not_a_model_is_refused_by_the_loader()
    {
        using var dir = new TempDirectory();
        var path = dir.Write("tokenizer.model", "not a model\n"u8.ToArray());

        var act = () => TokenizerFactory.Create(path);

        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain(path);
    }
}
