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
        apply(hidden, cos, sin, new Recompute(block, compute));

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var hidden = (Tensor)vars[0];
        var cos = (Tensor)vars[1];
        var sin = (Tensor)vars[2];
        var recompute = (Recompute)vars[3];

        // Tensors go through save_for_backward (not save_data, which would keep them outside autograd's care).
        ctx.save_for_backward([hidden, cos, sin]);
        ctx.save_data("recompute", recompute);

        // No graph inside the block: that is the whole point (PyTorch runs a Function's forward without grad too).
        // Without this every block's activations stay alive through the returned tensor and memory grows as if
        // nothing were checkpointed (seen on an H200: a 200M model at 32K filled 139 GiB).
        using var noGrad = no_grad();
        return recompute.Block.Forward(hidden, cos, sin, recompute.Compute);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var recompute = (Recompute)ctx.get_data("recompute");
        var saved = ctx.get_saved_variables();
        Tensor inputGrad;
        using (var scope = NewDisposeScope())
        using (enable_grad())
        {
            // The recomputed activations are freed when this scope ends; parameter gradients live on in .grad.
            var input = saved[0].detach().requires_grad_(true);
            var output = recompute.Block.Forward(input, saved[1], saved[2], recompute.Compute);
            autograd.backward(output, gradOutput);
            inputGrad = input.grad!.MoveToOuterDisposeScope();
        }

        // One gradient per argument of apply(): the block input's; none for cos, sin and the recipe.
        return [inputGrad, null!, null!, null!];
    }

    sealed record Recompute(LlamaDecoderLayer Block, ScalarType Compute);
}
