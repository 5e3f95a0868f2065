using Workflows.Evaluation.Inference;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Evaluation.Tests.Inference;

/// <summary>Prefix reuse on a tiny random LLaMA (CPU): same answers as prefilling every prompt whole, aligned prefix kept.</summary>
public sealed class TorchGreedyGeneratorTests
{
    private static LlamaModel TinyModel()
    {
        set_num_threads(1);
        manual_seed(11);
        var model = new LlamaModel(new LlamaConfig(VocabSize: 50257, HiddenSize: 64, IntermediateSize: 172, NumLayers: 2, NumHeads: 4,
            NumKeyValueHeads: 2, MaxPositionEmbeddings: 512));
        model.eval();
        return model;
    }

    [Theory]
    [InlineData(1, 37)]
    [InlineData(8, 32)]
    [InlineData(64, 0)]
    public void Reused_prefix_is_cut_to_the_alignment_and_answers_do_not_change(int alignment, int expectedReused)
    {
        using var model = TinyModel();
        var tokenizer = TestData.Gpt2;
        var prompt = new List<int>();
        tokenizer.Encode(string.Join(" ", Enumerable.Repeat("The magic number is hidden somewhere in this long text.", 8)), prompt);
        prompt.Count.Should().BeGreaterThan(60);
        var shared = prompt.Take(37).ToArray();

        string plain;
        using (var fresh = new TorchGreedyGenerator(model, tokenizer, "tiny", prefixAlignment: alignment))
        {
            plain = fresh.Generate(prompt, 6, CancellationToken.None);
        }

        using var reusing = new TorchGreedyGenerator(model, tokenizer, "tiny", prefixAlignment: alignment);
        reusing.PrefillShared(shared, CancellationToken.None);
        var first = reusing.Generate(prompt, 6, CancellationToken.None);
        var second = reusing.Generate(prompt, 6, CancellationToken.None);

        first.Should().Be(plain);
        second.Should().Be(plain, "the cache was truncated back to the kept prefix between prompts");
        reusing.ReusedTokens.Should().Be(2 * expectedReused);
    }

    [Fact]
    public void Alignment_defaults_to_one_on_cpu()
    {
        using var model = TinyModel();
        using var generator = new TorchGreedyGenerator(model, TestData.Gpt2, "tiny");
        generator.PrefixAlignment.Should().Be(1);
    }
}
