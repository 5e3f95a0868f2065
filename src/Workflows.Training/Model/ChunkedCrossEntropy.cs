using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workflows.Training.Model;

/// <summary>
/// Mean cross-entropy of the LM head's logits without ever holding the logits of all positions: at 80K positions
/// and a 32K vocabulary, float32 logits alone are 10 GB. The positions are walked in chunks; each chunk's logits
/// are computed, turned into its loss and — for training — into the gradients with respect to the chunk's hidden
/// states and the head weight (softmax − one-hot, scaled, then two matmuls), and freed before the next chunk.
/// Peak extra memory is one chunk's logits plus the [positions, hidden] gradient. Same FLOPs as the plain path.
/// <para>
/// No autograd function is involved: the trainer calls <see cref="LossAndGradients"/> and carries the gradient on
/// by hand (see <c>BlockwiseBackprop</c>), so nothing is stored twice and nothing waits for the GC.
/// Numerics follow the plain path (<see cref="LlamaModel.Logits"/> then <c>F.cross_entropy</c>): logits in the
/// compute type, softmax in float32, the logit gradient cast to the compute type for the two matmuls.
/// </para>
/// </summary>
public static class ChunkedCrossEntropy
{
    /// <summary>Mean cross-entropy of <paramref name="targets"/> [N] given <paramref name="hidden"/> [N, d] and the head <paramref name="weight"/> [V, d] (no gradients).</summary>
    public static Tensor Loss(Tensor hidden, Tensor weight, Tensor targets, ScalarType compute, int chunkTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        using var _ = no_grad();
        long n = hidden.shape[0];
        var lossSum = zeros([], ScalarType.Float32, hidden.device);
        using (var scope = NewDisposeScope())
        {
            var weightC = weight.to(compute);
            for (long start = 0; start < n; start += chunkTokens)
            {
                using var chunkScope = NewDisposeScope();
                long length = Math.Min(chunkTokens, n - start);
                var logProbs = F.log_softmax(F.linear(hidden.narrow(0, start, length).to(compute), weightC).to(ScalarType.Float32), -1);
                lossSum.sub_(logProbs.gather(1, targets.narrow(0, start, length).unsqueeze(1)).sum());
            }
        }
        return lossSum.div_(n);
    }

    /// <summary>
    /// The mean cross-entropy over <paramref name="hidden"/>'s N positions times <paramref name="scale"/>, and its
    /// gradients: returned for the hidden states ([N, d], in the hidden states' type), added into
    /// <paramref name="weightGradient"/> (float32 [V, d]) for the head weight. The loss stays on the device
    /// (a 0-d float32 tensor) so reading it does not stall the GPU between micro-batches.
    /// </summary>
    public static (Tensor Loss, Tensor HiddenGradient) LossAndGradients(Tensor hidden, Tensor weight, Tensor targets, int chunkTokens,
        double scale, Tensor weightGradient)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        if (weightGradient.dtype != ScalarType.Float32) throw new ArgumentException("the head's gradient accumulates in float32", nameof(weightGradient));
        using var _ = no_grad();
        long n = hidden.shape[0];
        var compute = hidden.dtype;
        var lossSum = zeros([], ScalarType.Float32, hidden.device);
        var hiddenGradient = empty_like(hidden);
        using (var scope = NewDisposeScope())
        {
            var weightC = weight.to(compute);
            for (long start = 0; start < n; start += chunkTokens)
            {
                using var chunkScope = NewDisposeScope();
                long length = Math.Min(chunkTokens, n - start);
                var h = hidden.narrow(0, start, length);                                   // [c, d]
                var t = targets.narrow(0, start, length).unsqueeze(1);                     // [c, 1]
                var logProbs = F.log_softmax(F.linear(h, weightC).to(ScalarType.Float32), -1); // [c, V] float32
                lossSum.sub_(logProbs.gather(1, t).sum());

                // d(scale · mean loss)/d(logits) = (softmax − one-hot) · scale / N, then back through logits = h·Wᵀ.
                var gradLogits = logProbs.exp_();
                gradLogits.scatter_add_(1, t, full([length, 1], -1.0f, ScalarType.Float32, hidden.device));
                gradLogits.mul_(scale / n);
                var g = gradLogits.to(compute);                                            // [c, V]
                hiddenGradient.narrow(0, start, length).copy_(g.matmul(weightC));           // [c, d]
                weightGradient.add_(g.t().matmul(h));                                      // [V, d]
            }
        }
        return (lossSum.mul_(scale / n), hiddenGradient);
    }
}
