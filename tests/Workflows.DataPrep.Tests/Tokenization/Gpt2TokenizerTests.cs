using System.Collections.Concurrent;
using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Tests.Tokenization;

public sealed class Gpt2TokenizerTests
{
    private static readonly Gpt2Tokenizer Tokenizer = new();

    [Fact]
    public void Encodes_with_GPT_2_ids_and_has_endoftext_as_EOS_and_no_BOS()
    {
        Ids("Hello world").Should().Equal(15496, 995);
        Tokenizer.Id.Should().Be("gpt2");
        Tokenizer.VocabularySize.Should().Be(50257);
        Tokenizer.EosId.Should().Be(50256);
        Tokenizer.BosId.Should().BeNull();
        Tokenizer.Decode([15496, 995, 50256]).Should().Be("Hello world<|endoftext|>");
    }

    [Fact]
    public void A_literal_endoftext_in_a_document_is_text_not_EOS()
    {
        foreach (var text in new[] { "<|endoftext|>", "a <|endoftext|>b", "x<|endoftext|><|endoftext|> y", "<|endoftext|>\n<|endoftext" })
        {
            var ids = Ids(text);
            ids.Should().NotContain(Gpt2Tokenizer.EndOfTextId, "in {0}", text);
            Tokenizer.Decode(ids).Should().Be(text);
        }

        // tiktoken's encode_ordinary("<|endoftext|>"): "<|" "end" "of" "text" "|>"
        Ids("<|endoftext|>").Should().Equal(27, 91, 437, 1659, 5239, 91, 29);
    }

    [Fact]
    public void Encodes_validation_documents_the_same_from_several_threads_and_decodes_them_back()
    {
        var texts = TestCorpus.SlimPajamaLines.Select(TestCorpus.TextOf).Where(t => t.Length < 20_000).Take(150).ToList();
        var sequential = texts.Select(Ids).ToList();
        var parallel = new ConcurrentDictionary<int, List<int>>();

        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Ids(texts[i]));

        for (var i = 0; i < texts.Count; i++)
        {
            parallel[i].Should().Equal(sequential[i]);
            Tokenizer.Decode(sequential[i]).Should().Be(texts[i]);
        }
    }

    private static List<int> Ids(string text)
    {
        var ids = new List<int>();
        Tokenizer.Encode(text, ids);
        return ids;
    }
}
