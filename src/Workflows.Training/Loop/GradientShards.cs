using Workflows.Training.Distributed;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>
/// Where the backward pass puts gradients, and who keeps them. The flat parameter space [0, Count) is split into
/// <c>WorldSize</c> contiguous shards of <see cref="ShardSize"/> elements (the last one padded); each rank keeps the
/// float32 gradients of its own shard only and its optimizer updates only that shard (ZeRO stage 2).
/// <para>
/// The backward pass hands over the gradients of one group of parameters at a time (a decoder block, the final norm,
/// the head, the embedding; each contiguous in the flat space) as soon as autograd produced them. On one process they
/// are added straight into the float32 buffer. Across processes they are packed into a float32 bucket and reduced
/// (summed) to each rank that owns part of the group, which adds its part into its shard; the bucket is then freed,
/// so no rank ever holds the whole model's gradients. Every rank must hand over the same groups in the same order:
/// a rank without a micro-batch in a round hands over zeros (<see cref="AddZeros"/>).
/// </para>
/// </summary>
public sealed class GradientShards : IDisposable
{
    readonly FlatParameters flat;
    readonly ICollectives group;

    public GradientShards(FlatParameters flat, ICollectives group)
    {
        (this.flat, this.group) = (flat, group);
        ShardSize = (flat.Count + group.WorldSize - 1) / group.WorldSize;
        Start = Math.Min(flat.Count, group.Rank * ShardSize);
        Length = Math.Max(0, Math.Min(flat.Count, Start + ShardSize) - Start);
        Local = group.WorldSize == 1 ? flat.Gradients : zeros(ShardSize, ScalarType.Float32, flat.Device).DetachFromDisposeScope();
    }

    public long ShardSize { get; }
    /// <summary>This rank's first element of the flat space.</summary>
    public long Start { get; }
    /// <summary>Elements this rank owns (the last rank may own fewer than <see cref="ShardSize"/>).</summary>
    public long Length { get; }
    /// <summary>This rank's float32 gradients, <see cref="ShardSize"/> elements (the first <see cref="Length"/> are real).</summary>
    public Tensor Local { get; }
    public ICollectives Group => group;

    public void Zero()
    {
        using var scope = NewDisposeScope();
        Local.zero_();
    }

    /// <summary>Adds the gradients of one group (contiguous in the flat space), one per parameter in the group's order.</summary>
    public void Add(ParameterGroup parameters, IReadOnlyList<Tensor> gradients)
    {
        using var scope = NewDisposeScope();
        if (group.WorldSize == 1)
        {
            for (int i = 0; i < gradients.Count; i++) flat.GradientOf(parameters.Slots[i]).add_(gradients[i]);
            return;
        }
        var bucket = empty(parameters.Count, ScalarType.Float32, flat.Device);
        for (int i = 0; i < gradients.Count; i++)
        {
            var slot = parameters.Slots[i];
            bucket.narrow(0, slot.Offset - parameters.Start, slot.Count).view(slot.Shape).copy_(gradients[i]);
        }
        Reduce(bucket, parameters.Start, parameters.End);
    }

    /// <summary>Takes part in the reductions of a group without contributing (a rank with no micro-batch this round).</summary>
    public void AddZeros(ParameterGroup parameters)
    {
        if (group.WorldSize == 1) return;
        using var scope = NewDisposeScope();
        Reduce(zeros(parameters.Count, ScalarType.Float32, flat.Device), parameters.Start, parameters.End);
    }

    // Sums the bucket [start, end) of the flat space over ranks, each part to the rank that owns it.
    void Reduce(Tensor bucket, long start, long end)
    {
        for (int owner = (int)(start / ShardSize); owner < group.WorldSize && owner * ShardSize < end; owner++)
        {
            long from = Math.Max(start, owner * ShardSize), to = Math.Min(end, (owner + 1) * ShardSize);
            var part = bucket.narrow(0, from - start, to - from);
            group.ReduceSum(part, owner);
            if (owner == group.Rank) Local.narrow(0, from - Start, to - from).add_(part);
        }
    }

    /// <summary>The global L2 norm of the gradients (every rank gets the same value).</summary>
    public double Norm()
    {
        using var scope = NewDisposeScope();
        var local = Local.narrow(0, 0, Length);
        if (group.WorldSize == 1) return local.norm().item<float>();
        // Squares summed in float64 across ranks: the shards' norms are combined exactly, whatever the world size.
        var squared = local.norm().to(ScalarType.Float64).square().reshape(1);
        group.AllReduceSum(squared);
        return Math.Sqrt(squared.item<double>());
    }

    public void Dispose()
    {
        if (group.WorldSize > 1) Local.Dispose();
    }
}
