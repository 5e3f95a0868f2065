using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workflows.Training.Model;

/// <summary>
/// Mean cross-entropy of the LM head's logits without ever holding the logits of all positions: at 80K positions
/// and a 32K vocabulary, float32 logits alone are 10 GB (and the plain path keeps them, their bf16 copy and their
/// gradient alive until the backward pass). This is a custom autograd function over (hidden, head weight): its
/// forward pass walks the positions in chunks, computing each chunk's logits, loss and — when gradients are
/// wanted — the gradients of the mean loss with respect to the chunk's hidden states and to the head weight
/// (softmax − one-hot, divided by the number of positions, then two matmuls), and frees the chunk's logits before
/// the next. The backward pass only scales the stored gradients by the incoming one. Peak extra memory is one
/// chunk's logits plus a [positions, hidden] and a [vocab, hidden] gradient. Same FLOPs as the plain path.
/// <para>
/// Numerics follow the plain path (<see cref="LlamaModel.Logits"/> then <c>F.cross_entropy</c>): logits are
/// computed in the compute type and the softmax in float32; the logit gradient is cast to the compute type for the
/// two matmuls, as autograd does through the cast. The loss equals the plain one to float rounding (tested).
/// </para>
/// </summary>
public sealed class ChunkedCrossEntropy : autograd.SingleTensorFunction<ChunkedCrossEntropy>
{
    public override string Name => "ChunkedCrossEntropy";

    /// <summary>Mean cross-entropy of <paramref name="targets"/> [N] given <paramref name="hidden"/> [N, d] and the head <paramref name="weight"/> [V, d].</summary>
    public static Tensor Loss(Tensor hidden, Tensor weight, Tensor targets, ScalarType compute, int chunkTokens)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTokens, 1);
        bool wantGradients = is_grad_enabled() && (hidden.requires_grad || weight.requires_grad);
        var recipe = new Recipe(targets, compute, chunkTokens);
        if (!wantGradients)
        {
            using var _ = no_grad();
            return Run(hidden, weight, recipe, gradients: false).Loss;
        }
        return apply(hidden, weight, recipe);
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (hidden, weight, recipe) = ((Tensor)vars[0], (Tensor)vars[1], (Recipe)vars[2]);
        var result = Run(hidden, weight, recipe, gradients: true);
        ctx.save_data("grad_hidden", result.GradHidden!);
        ctx.save_data("grad_weight", result.GradWeight!);
        return result.Loss;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var gradHidden = (Tensor)ctx.get_data("grad_hidden");
        var gradWeight = (Tensor)ctx.get_data("grad_weight");
        return [gradHidden * gradOutput, gradWeight * gradOutput, null!];
    }

    sealed record Recipe(Tensor Targets, ScalarType Compute, int ChunkTokens);

    sealed record Result(Tensor Loss, Tensor? GradHidden, Tensor? GradWeight);

    static Result Run(Tensor hidden, Tensor weight, Recipe recipe, bool gradients)
    {
        long n = hidden.shape[0];
        var compute = recipe.Compute;
        Tensor lossSum = zeros([], ScalarType.Float32, hidden.device);
        Tensor? gradHidden = gradients ? empty_like(hidden) : null;
        Tensor? gradWeight = gradients ? zeros(weight.shape, ScalarType.Float32, weight.device) : null;
        using (no_grad())
        {
            var weightC = weight.to(compute);
            for (long start = 0; start < n; start += recipe.ChunkTokens)
            {
                using var scope = NewDisposeScope();
                long length = Math.Min(recipe.ChunkTokens, n - start);
                var h = hidden.narrow(0, start, length).to(compute);
                var targets = recipe.Targets.narrow(0, start, length);
                var logits = F.linear(h, weightC).to(ScalarType.Float32);
                var logProbs = F.log_softmax(logits, -1);
                lossSum.sub_(logProbs.gather(1, targets.unsqueeze(1)).sum());
                if (!gradients) continue;

                // d(mean loss)/d(logits) = (softmax − one-hot) / N, then back through logits = h·Wᵀ.
                var gradLogits = logProbs.exp_();
                gradLogits.scatter_add_(1, targets.unsqueeze(1), full([length, 1], -1.0f, ScalarType.Float32, hidden.device));
                gradLogits.div_(n);
                var g = gradLogits.to(compute);
                gradHidden!.narrow(0, start, length).copy_(g.matmul(weightC));
                gradWeight!.add_(g.t().matmul(h));
            }
        }
        var loss = lossSum.div_(n);
        return new Result(loss, gradHidden, gradWeight?.to(weight.dtype));
    }
}
