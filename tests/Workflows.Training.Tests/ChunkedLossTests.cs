using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

public class ChunkedLossTests
{
    static (double Loss, Dictionary<string, Tensor> Grads) LossAndGradients(bool tied, int chunk, ScalarType compute = ScalarType.Float32)
    {
        manual_seed(31);
        using var model = new LlamaModel(TinyModels.Config(vocab: 89, tied: tied)) { LossChunkTokens = chunk, ComputeType = compute };
        manual_seed(32);
        var batch = randint(89, [2, 21], dtype: ScalarType.Int64);
        var loss = model.Loss(batch.narrow(1, 0, 20), batch.narrow(1, 1, 20)) * 0.5; // a scaled loss, as in grad accumulation
        loss.backward();
        return (loss.item<float>(), model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Chunked_cross_entropy_gives_the_loss_and_gradients_of_the_plain_path(bool tied)
    {
        var plain = LossAndGradients(tied, chunk: 0);
        var chunked = LossAndGradients(tied, chunk: 7); // 40 positions: chunks of 7, the last of 5

        chunked.Loss.Should().BeApproximately(plain.Loss, 1e-6);
        chunked.Grads.Keys.Should().BeEquivalentTo(plain.Grads.Keys);
        foreach (var (name, g) in plain.Grads)
        {
            g.abs().sum().item<float>().Should().BeGreaterThan(0, name);
            chunked.Grads[name].allclose(g, rtol: 1e-4, atol: 1e-7).Should().BeTrue($"{name} must get the same gradient");
        }
    }

    [Fact]
    public void Chunked_cross_entropy_in_bf16_stays_close_to_the_plain_bf16_path_and_without_grad_only_computes_the_loss()
    {
        var plain = LossAndGradients(false, chunk: 0, ScalarType.BFloat16);
        var chunked = LossAndGradients(false, chunk: 9, ScalarType.BFloat16);
        chunked.Loss.Should().BeApproximately(plain.Loss, 1e-3);
        var head = chunked.Grads["lm_head.weight"];
        ((head - plain.Grads["lm_head.weight"]).abs().max().item<float>() / plain.Grads["lm_head.weight"].abs().max().item<float>())
            .Should().BeLessThan(0.02f);

        manual_seed(33);
        using var model = new LlamaModel(TinyModels.Config(vocab: 89)) { LossChunkTokens = 4 };
        var ids = randint(89, [1, 13], dtype: ScalarType.Int64);
        using (no_grad())
        {
            var loss = model.Loss(ids.narrow(1, 0, 12), ids.narrow(1, 1, 12));
            loss.requires_grad.Should().BeFalse();
            model.LossChunkTokens = 0;
            loss.item<float>().Should().BeApproximately(model.Loss(ids.narrow(1, 0, 12), ids.narrow(1, 1, 12)).item<float>(), 1e-5f);
        }
    }
}
