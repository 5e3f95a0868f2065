using static TorchSharp.torch;

namespace Workflows.Training.Model;

/// <summary>
/// Activation checkpointing for one decoder block. TorchSharp 0.107 has no <c>torch.utils.checkpoint</c>, so this
/// is PyTorch's reentrant variant written as a custom autograd function: the forward pass runs the block without
/// building a graph and keeps only the block's input; the backward pass runs the block again with grad enabled
/// and back-propagates the incoming gradient through that fresh graph, which accumulates the block's parameter
/// gradients and yields the gradient of the input. Memory per block drops from all its activations to one
/// [batch, T, hidden] tensor, for about one extra forward pass of compute.
/// Requires the block input to require grad (true whenever the embeddings are trained), like PyTorch's reentrant
/// checkpoint; the blocks have no dropout, so the recomputation is exact.
/// </summary>
public sealed class BlockCheckpoint : autograd.SingleTensorFunction<BlockCheckpoint>
{
    public override string Name => "LlamaBlockCheckpoint";

    public static Tensor Apply(LlamaDecoderLayer block, Tensor hidden, Tensor cos, Tensor sin, ScalarType compute) =>
        apply(hidden, new Recompute(block, cos, sin, compute));

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var hidden = (Tensor)vars[0];
        var recompute = (Recompute)vars[1];
        ctx.save_for_backward([hidden]);
        ctx.save_data("recompute", recompute);
        return recompute.Block.Forward(hidden, recompute.Cos, recompute.Sin, recompute.Compute);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var recompute = (Recompute)ctx.get_data("recompute");
        var saved = ctx.get_saved_variables()[0];
        using var grad = enable_grad();
        var input = saved.detach().requires_grad_(true);
        var output = recompute.Block.Forward(input, recompute.Cos, recompute.Sin, recompute.Compute);
        autograd.backward(output, gradOutput);
        // One gradient per argument of apply(): the block input's, and none for the recompute recipe.
        return [input.grad!, null!];
    }

    sealed record Recompute(LlamaDecoderLayer Block, Tensor Cos, Tensor Sin, ScalarType Compute);
}
