using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training.Inference;

/// <summary>
/// The key/value cache of a LLaMA model: per layer, keys and values of every position seen so far, after RoPE,
/// shaped [batch, kv_heads, capacity, head_dim] in the model's compute type (K/V heads are stored once, not
/// repeated per query head). Storage is allocated at the first write (with the capacity reserved by then, so a
/// known prompt length costs one allocation) and grows in whole chunks of <c>growthTokens</c> when a write goes
/// past it. <see cref="Length"/> counts the valid positions; truncating only moves it, so going back to a shared
/// prefix is free.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly LayerKvCache[] layers;

    public KvCache(int layerCount, int growthTokens = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(growthTokens, 1);
        layers = Enumerable.Range(0, layerCount).Select(_ => new LayerKvCache(this)).ToArray();
        GrowthTokens = growthTokens;
    }

    public IReadOnlyList<LayerKvCache> Layers => layers;
    public int GrowthTokens { get; }
    /// <summary>Positions held (the same for every layer and every sequence of the batch).</summary>
    public int Length { get; internal set; }
    /// <summary>Positions that fit without growing (the reservation until the first write).</summary>
    public long Capacity => layers[0].Allocated ? layers[0].Capacity : ReservedTokens;
    /// <summary>Bytes of device memory held by keys and values.</summary>
    public long Bytes => layers.Sum(l => l.Bytes);
    internal long ReservedTokens { get; private set; }

    /// <summary>Makes room for <paramref name="tokens"/> positions (at allocation time, or by growing now).</summary>
    public void Reserve(long tokens)
    {
        ReservedTokens = Math.Max(ReservedTokens, tokens);
        foreach (var layer in layers) layer.EnsureCapacity(tokens);
    }

    /// <summary>Forgets every position from <paramref name="length"/> on (the storage is kept for reuse).</summary>
    public void TruncateTo(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length), $"the cache holds {Length} positions");
        Length = length;
    }

    /// <summary>A copy of the valid positions, to go back to later with <see cref="Restore"/> (costs device memory).</summary>
    public KvSnapshot Snapshot()
    {
        if (Length == 0) return new KvSnapshot(0, [], []);
        var keys = layers.Select(l => l.Keys(Length).clone().DetachFromDisposeScope()).ToArray();
        var values = layers.Select(l => l.Values(Length).clone().DetachFromDisposeScope()).ToArray();
        return new KvSnapshot(Length, keys, values);
    }

    /// <summary>Puts a snapshot's positions back; positions after it are forgotten.</summary>
    public void Restore(KvSnapshot snapshot)
    {
        for (int i = 0; i < snapshot.Keys.Count; i++)
            layers[i].Write(snapshot.Keys[i], snapshot.Values[i], 0);
        Length = snapshot.Length;
    }

    public void Dispose()
    {
        foreach (var layer in layers) layer.Release();
        Length = 0;
    }
}

/// <summary>One layer's keys and values (see <see cref="KvCache"/>).</summary>
public sealed class LayerKvCache
{
    readonly KvCache owner;
    Tensor? keys, values;

    internal LayerKvCache(KvCache owner) => this.owner = owner;

    internal bool Allocated => keys is not null;
    internal long Capacity => keys?.shape[2] ?? 0;
    internal long Bytes => keys is null ? 0 : 2 * keys.NumberOfElements * keys.ElementSize;

    /// <summary>Keys of positions 0..length-1: a view [batch, kv_heads, length, head_dim].</summary>
    public Tensor Keys(long length) => keys!.narrow(2, 0, length);
    public Tensor Values(long length) => values!.narrow(2, 0, length);

    /// <summary>Stores <paramref name="k"/>, <paramref name="v"/> [batch, kv_heads, n, head_dim] at positions start..start+n-1.</summary>
    internal void Write(Tensor k, Tensor v, long start)
    {
        if (start > owner.Length) throw new InvalidOperationException($"write at {start} leaves a gap after {owner.Length} cached positions");
        long end = start + k.shape[2];
        bool sameLayout = keys is not null && keys.shape[0] == k.shape[0] && keys.shape[1] == k.shape[1]
            && keys.shape[3] == k.shape[3] && keys.dtype == k.dtype && keys.device_type == k.device_type && keys.device_index == k.device_index;
        if (!sameLayout)
        {
            if (start > 0) throw new InvalidOperationException("a batch of another size or type can only start at position 0 (Reset the generator first)");
            Release();
            Allocate(k, Math.Max(end, owner.ReservedTokens));
        }
        else if (end > Capacity)
        {
            Grow(end);
        }
        keys!.narrow(2, start, k.shape[2]).copy_(k);
        values!.narrow(2, start, v.shape[2]).copy_(v);
    }

    internal void EnsureCapacity(long tokens)
    {
        if (keys is not null && tokens > Capacity) Grow(tokens);
    }

    void Allocate(Tensor like, long capacity)
    {
        long[] shape = [like.shape[0], like.shape[1], capacity, like.shape[3]];
        keys = empty(shape, like.dtype, like.device).DetachFromDisposeScope();
        values = empty(shape, like.dtype, like.device).DetachFromDisposeScope();
    }

    // Whole chunks, so decoding token by token does not reallocate at every step.
    void Grow(long needed)
    {
        long chunk = owner.GrowthTokens;
        long capacity = (Math.Max(needed, Capacity + chunk) + chunk - 1) / chunk * chunk;
        var (oldKeys, oldValues) = (keys!, values!);
        Allocate(oldKeys, capacity);
        int valid = owner.Length;
        if (valid > 0)
        {
            keys!.narrow(2, 0, valid).copy_(oldKeys.narrow(2, 0, valid));
            values!.narrow(2, 0, valid).copy_(oldValues.narrow(2, 0, valid));
        }
        oldKeys.Dispose();
        oldValues.Dispose();
    }

    internal void Release()
    {
        keys?.Dispose();
        values?.Dispose();
        keys = values = null;
    }
}

/// <summary>A copy of a cache's first <see cref="Length"/> positions (see <see cref="KvCache.Snapshot"/>).</summary>
public sealed record KvSnapshot(int Length, IReadOnlyList<Tensor> Keys, IReadOnlyList<Tensor> Values) : IDisposable
{
    public long Bytes => Keys.Concat(Values).Sum(t => t.NumberOfElements * t.ElementSize);

    public void Dispose()
    {
        foreach (var t in Keys.Concat(Values)) t.Dispose();
    }
}
