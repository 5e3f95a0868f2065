using static TorchSharp.torch;

namespace Workflows.Training.Distributed;

/// <summary>
/// The collective operations data-parallel training needs, on contiguous tensors of the training device. Every rank
/// calls the same operations in the same order (NCCL's rule); the sum is the only reduction.
/// </summary>
public interface ICollectives : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }

    /// <summary>Every rank's <paramref name="tensor"/> becomes the element-wise sum over ranks.</summary>
    void AllReduceSum(Tensor tensor);

    /// <summary>
    /// The element-wise sum over ranks of <paramref name="tensor"/> lands in <paramref name="root"/>'s tensor; the
    /// other ranks' tensors are left as they were (NCCL's reduce).
    /// </summary>
    void ReduceSum(Tensor tensor, int root);

    /// <summary>
    /// <paramref name="output"/> (WorldSize × the input's length) becomes every rank's <paramref name="input"/> in rank
    /// order. The input may be the output's own slice for this rank (in place).
    /// </summary>
    void AllGather(Tensor input, Tensor output);

    /// <summary>Every rank's <paramref name="tensor"/> becomes <paramref name="root"/>'s.</summary>
    void Broadcast(Tensor tensor, int root);

    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();
}

/// <summary>A rank of a data-parallel group stopped answering or failed; the group cannot go on.</summary>
public sealed class CollectiveFailedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One process, no peers: every collective is the identity. What single-GPU training uses.</summary>
public sealed class SingleProcess : ICollectives
{
    public static SingleProcess Instance { get; } = new();
    public int Rank => 0;
    public int WorldSize => 1;
    public void AllReduceSum(Tensor tensor) { }
    public void ReduceSum(Tensor tensor, int root) { }

    public void AllGather(Tensor input, Tensor output)
    {
        if (input.Handle == output.Handle || input.data_ptr_equals(output)) return;
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        output.copy_(input.reshape(output.shape));
    }

    public void Broadcast(Tensor tensor, int root) { }
    public void Barrier() { }
    public void Dispose() { }
}

static class TensorIdentity
{
    /// <summary>True when both tensors start at the same address and have the same length (the same memory).</summary>
    public static bool data_ptr_equals(this Tensor a, Tensor b) =>
        a.numel() == b.numel() && a.dtype == b.dtype && a.device_type == b.device_type
        && Native.TensorPointers.DataPointer(a) == Native.TensorPointers.DataPointer(b);
}
