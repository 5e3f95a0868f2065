using Workflows.Evaluation.Needle;

namespace Workflows.Evaluation.Tests.Needle;

/// <summary>
/// HF transformers' encode/decode defaults around the LLaMA-2 SentencePiece ids; expected ids worked out by hand from
/// SentencePiece pieces (▁The = 450, ▁cat = 6635, ▁ = 29871, ▁▁ = 259, "\n" = byte 13).
/// </summary>
public sealed class HfTokenizerBehaviourTests
{
    [CorpusFact]
    public void Encode_adds_bos_and_turns_special_token_text_into_ids_with_a_dummy_prefix_per_piece()
    {
        var hf = HfTokenizerBehaviour.For(TestData.LlamaTokenizer);
        hf.Encode("The cat", addSpecialTokens: true).Should().Equal(1, 450, 6635);
        hf.Encode("The cat", addSpecialTokens: false).Should().Equal(450, 6635);
        hf.Encode("<s> The cat", addSpecialTokens: true).Should().Equal(1, 1, 29871, 450, 6635);
        hf.Encode("The<s>The", addSpecialTokens: false).Should().Equal(450, 1, 450);
        hf.Encode("<s><s>", addSpecialTokens: false).Should().Equal(1, 1);
        hf.Encode("a</s>", addSpecialTokens: false).Should().Equal(263, 2);
    }

    [CorpusFact]
    public void Special_ids_are_hfs_special_tokens_which_answers_drop()
    {
        // LLaMA-2: <unk> 0, <s> 1, </s> 2 (HF's all_special_ids); GPT-2: <|endoftext|> only.
        DataPrep.Tokenization.ITokenizer llama = TestData.LlamaTokenizer;
        llama.SpecialIds.Should().BeEquivalentTo([0, 1, 2]);
        DataPrep.Tokenization.ITokenizer gpt2 = TestData.Gpt2;
        gpt2.SpecialIds.Should().BeEquivalentTo([50256]);
    }

    [CorpusFact]
    public void Decode_renders_bos_and_keeps_the_space_after_it()
    {
        var hf = HfTokenizerBehaviour.For(TestData.LlamaTokenizer);
        hf.Decode([1, 450, 6635]).Should().Be("<s> The cat");
        hf.Decode([450, 6635]).Should().Be("The cat", "only a leading space of the whole string is stripped");
        hf.Decode([450, 1, 450]).Should().Be("The<s> The");
        hf.DecodeContinuation([450]).Should().Be(" The");
        hf.Decode([29871, 13, 1576]).Should().Be("\nThe");
        hf.DecodeContinuation([29871, 13, 1576]).Should().Be(" \nThe");
    }

    [CorpusFact]
    public void The_paper_needle_is_28_ids_and_29_with_bos()
    {
        var hf = HfTokenizerBehaviour.For(TestData.LlamaTokenizer);
        var ids = hf.Encode(PaperNeedle.Needle, addSpecialTokens: false);
        ids.Should().HaveCount(28);
        ids.Take(3).Should().Equal(29871, 13, 1576);
        ids.TakeLast(2).Should().Equal(29889, 13);
        hf.Encode(PaperNeedle.Needle, addSpecialTokens: true).Should().Equal([1, .. ids]);
        hf.PeriodIds.Should().Equal(29889, 869);
    }

    [Fact]
    public void Gpt2_has_no_bos_and_no_special_text()
    {
        var hf = HfTokenizerBehaviour.For(TestData.Gpt2);
        hf.SpecialTokens.Should().BeEmpty();
        var ids = hf.Encode("The cat sat.", addSpecialTokens: true);
        ids.Should().Equal(464, 3797, 3332, 13);
        hf.Decode(ids).Should().Be("The cat sat.");
        hf.DecodeContinuation(ids).Should().Be("The cat sat.");
    }
}
