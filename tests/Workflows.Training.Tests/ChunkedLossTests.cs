using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

public class ChunkedLossTests
{
    [Theory]
    [InlineData(7)]   // 40 positions: chunks of 7, the last of 5
    [InlineData(40)]  // one chunk
    public void Chunked_cross_entropy_gives_the_loss_and_gradients_of_autograd_through_the_plain_path(int chunk)
    {
        manual_seed(31);
        var hidden = randn(40, 16).requires_grad_(true);
        var weight = (randn(89, 16) * 0.1).requires_grad_(true);
        var targets = randint(89, [40], dtype: ScalarType.Int64);

        // Autograd through all logits at once, on 0.5 × the loss (a micro-batch's weight in accumulation).
        var plain = nn.functional.cross_entropy(nn.functional.linear(hidden, weight), targets) * 0.5;
        plain.backward();

        var weightGradient = zeros(89, 16);
        var (loss, hiddenGradient) = ChunkedCrossEntropy.LossAndGradients(hidden.detach(), weight.detach(), targets, chunk, 0.5, weightGradient);

        loss.item<float>().Should().BeApproximately(plain.item<float>(), 1e-6f);
        hiddenGradient.allclose(hidden.grad!, rtol: 1e-4, atol: 1e-7).Should().BeTrue("the hidden states' gradient");
        weightGradient.allclose(weight.grad!, rtol: 1e-4, atol: 1e-7).Should().BeTrue("the head's gradient, added into the buffer");
        ChunkedCrossEntropy.LossAndGradients(hidden.detach(), weight.detach(), targets, chunk, 0.5, weightGradient);
        weightGradient.allclose(weight.grad! * 2, rtol: 1e-4, atol: 1e-7).Should().BeTrue("a second call accumulates");
    }

    [Fact]
    public void Without_gradients_the_model_computes_the_chunked_loss_equal_to_the_plain_one()
    {
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
