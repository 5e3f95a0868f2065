using TorchSharp.Modules;
using Workflows.Training.Distributed;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>
/// A group of parameters handled together (a decoder block, the final norm, the LM head, the embedding): contiguous in
/// the flat space, with the slots known up front, so a group can be gathered, reduced or skipped while its parameters
/// are empty placeholders (ZeRO stage 3).
/// </summary>
public sealed record ParameterGroup(IReadOnlyList<Parameter> Parameters, IReadOnlyList<FlatParameters.Slot> Slots)
{
    public long Start => Slots[0].Offset;
    public long End => Slots[^1].Offset + Slots[^1].Count;
    public long Count => End - Start;

    /// <summary>The parameters of <paramref name="flat"/> whose names start with <paramref name="prefix"/>; they must be contiguous.</summary>
    public static ParameterGroup Of(FlatParameters flat, string prefix)
    {
        var entries = flat.Named(prefix);
        if (entries.Count == 0) throw new ArgumentException($"no parameter is named {prefix}…", nameof(prefix));
        for (int i = 1; i < entries.Count; i++)
            if (entries[i].Slot.Offset != entries[i - 1].Slot.Offset + entries[i - 1].Slot.Count)
                throw new ArgumentException($"the parameters {prefix}… are not contiguous in the flat space", nameof(prefix));
        return new ParameterGroup(entries.Select(e => e.Parameter).ToList(), entries.Select(e => e.Slot).ToList());
    }
}

/// <summary>
/// ZeRO stage 3: each rank keeps only its shard of the bf16 (or fp32) parameters (<see cref="FlatParameters.Weights"/>,
/// the same contiguous range its gradients and optimizer own, see <see cref="GradientShards"/>); a group's parameters
/// exist in full only between <see cref="Gather"/> and <see cref="Release"/>. Gathering is the mirror of
/// <see cref="GradientShards"/>' reduction: for each rank owning part of the group's range, that rank copies its part
/// into a buffer of the group's size and broadcasts it (uneven boundaries are fine). The parameters then view the
/// buffer; releasing points them back at empty placeholders, which frees it. Every rank must gather the same groups
/// in the same order.
/// </summary>
public sealed class ParameterGathering
{
    readonly FlatParameters flat;
    readonly GradientShards shards;
    long gathered;

    public ParameterGathering(FlatParameters flat, GradientShards shards)
    {
        if (!flat.Sharded) throw new ArgumentException("the parameters are not sharded (ZeRO stage 3 only)", nameof(flat));
        (this.flat, this.shards) = (flat, shards);
    }

    /// <summary>Parameter elements this rank holds now: its shard plus every gathered group.</summary>
    public long ResidentElements => flat.Weights.numel() + gathered;

    /// <summary>The most <see cref="ResidentElements"/> ever held (measured at each gather).</summary>
    public long PeakResidentElements { get; private set; }

    /// <summary>Fills the group's parameters from their owners' shards.</summary>
    public void Gather(ParameterGroup group)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var collectives = shards.Group;
        long size = shards.ShardSize;
        var buffer = empty(group.Count, flat.ParameterType, flat.Device);
        for (int owner = (int)(group.Start / size); owner < collectives.WorldSize && owner * size < group.End; owner++)
        {
            long from = Math.Max(group.Start, owner * size), to = Math.Min(group.End, (owner + 1) * size);
            var part = buffer.narrow(0, from - group.Start, to - from);
            if (owner == collectives.Rank) part.copy_(flat.Weights.narrow(0, from - flat.WeightsStart, to - from));
            collectives.Broadcast(part, owner);
        }
        for (int i = 0; i < group.Parameters.Count; i++)
        {
            var slot = group.Slots[i];
            group.Parameters[i].set_(buffer.narrow(0, slot.Offset - group.Start, slot.Count).view(slot.Shape));
        }
        gathered += group.Count;
        PeakResidentElements = Math.Max(PeakResidentElements, ResidentElements);
    }

    /// <summary>Points the group's parameters back at empty placeholders (the gathered buffer is freed with its last view).</summary>
    public void Release(ParameterGroup group)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var p in group.Parameters) p.set_(empty(0, flat.ParameterType, flat.Device));
        gathered -= group.Count;
    }
}
