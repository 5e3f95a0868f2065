using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Inference;
using Workflows.Experiments.Spec;
using Workflows.Training.Inference;
using Workflows.Training.Model;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workflows.Evaluation.Tests.Inference;

/// <summary>The domain-loss model pass on a tiny random LLaMA (CPU): chunked cached losses equal a full forward pass.</summary>
public sealed class TokenLossesTests
{
    private static LlamaModel TinyModel(int vocab)
    {
        set_num_threads(1);
        manual_seed(7);
        var model = new LlamaModel(new LlamaConfig(VocabSize: vocab, HiddenSize: 64, IntermediateSize: 172, NumLayers: 2, NumHeads: 4,
            NumKeyValueHeads: 2, MaxPositionEmbeddings: 256));
        model.eval();
        return model;
    }

    [Fact]
    public void Chunked_cached_losses_equal_the_full_forward_cross_entropy()
    {
        using var model = TinyModel(97);
        var ids = Enumerable.Range(0, 41).Select(i => (i * 37 + 11) % 97).ToArray();
        using var generator = new LlamaGenerator(model);

        var chunked = TokenLosses.Compute(generator, ids, chunk: 7);

        float[] expected;
        using (no_grad())
        {
            var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]);
            var logits = model.forward(input)[0, ..^1];
            var targets = tensor(ids.Skip(1).Select(i => (long)i).ToArray());
            expected = F.cross_entropy(logits, targets, reduction: nn.Reduction.None).data<float>().ToArray();
        }

        chunked.Should().HaveCount(40);
        for (var i = 0; i < expected.Length; i++)
        {
            chunked[i].Should().BeApproximately(expected[i], 1e-4f, $"target {i + 1}");
        }

        chunked.Average().Should().BeApproximately((float)Math.Log(97), 1.0f, "a random model is near uniform");
    }

    [Fact]
    public void Domain_loss_evaluation_fills_every_bucket_and_length_of_each_source()
    {
        using var model = TinyModel(50257);
        using var generator = new LlamaGenerator(model);
        var text = string.Join(" ", Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 20));
        var docs = new (SlimPajamaSource, string)[] { (SlimPajamaSource.Book, text), (SlimPajamaSource.Book, text), (SlimPajamaSource.Github, text) };
        var spec = new DomainLossSpec(Lengths: [32, 64], Buckets: [new LengthBucket(0, 16), new LengthBucket(16, 128)], DocumentsPerSource: 2);

        var report = DomainLossEvaluation.Run("t", generator, new Gpt2Tokenizer(), docs, spec);

        report.Buckets.Select(b => (b.Bucket, b.Source)).Should().BeEquivalentTo(new[]
        {
            ("0-16", SlimPajamaSource.Github), ("16-128", SlimPajamaSource.Github), ("0-16", SlimPajamaSource.Book), ("16-128", SlimPajamaSource.Book),
        });
        report.Buckets.Single(b => b.Bucket == "0-16" && b.Source == SlimPajamaSource.Book).Tokens.Should().Be(2 * 15, "targets 1..15 of two documents");
        report.Lengths.Should().Contain(l => l.Length == 64 && l.Source == SlimPajamaSource.Github);
        report.Buckets.Should().OnlyContain(b => b.Loss > 5 && b.Loss < 20);
    }
}
