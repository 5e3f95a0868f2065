using TorchSharp;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Inference;

/// <summary>How a <see cref="LlamaGenerator"/> runs.</summary>
/// <param name="PrefillChunkTokens">
/// Positions run through the model at a time while prefilling: bounds activation memory (the MLP's
/// [chunk, intermediate] tensors, one chunk × cache-length attention mask) independently of the prompt length.
/// A prompt that fits one chunk on an empty cache runs in one causal pass (flash attention on GPU).
/// </param>
/// <param name="GrowthTokens">The cache grows in chunks of this many positions when a write goes past its capacity.</param>
public sealed record GeneratorOptions(int PrefillChunkTokens = 4096, int GrowthTokens = 4096)
{
    public GeneratorOptions Validated()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(PrefillChunkTokens, 1, nameof(PrefillChunkTokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(GrowthTokens, 1, nameof(GrowthTokens));
        return this;
    }
}

/// <summary>
/// Inference with a KV cache for a <see cref="LlamaModel"/>: chunked prefill, greedy decoding, batches of
/// equal-length prompts, and prefix reuse. The cache is a running sequence: <see cref="Prefill(Tensor)"/> appends
/// positions, <see cref="TruncateTo"/> (free) or <see cref="Restore"/> go back to an earlier state, so prompts that
/// share a prefix prefill it once:
/// <code>
/// gen.Prefill(prefix);                        // once
/// foreach (var rest in suffixes) { gen.TruncateTo(prefix.Length); answers.Add(gen.GenerateGreedy(rest, 50)); }
/// </code>
/// <para>
/// RoPE positions are absolute (cache length + offset). Dynamic NTK follows HuggingFace: the base is computed from
/// the sequence length at the time a token is processed (for a prefill call: the length at the end of the call; for
/// a decoded token at position p: p + 1), and cached keys keep the rotation they were given, as HF's cache does.
/// So a prompt prefilled in any number of chunks equals a one-shot prefill, and decoding matches HF's generate.
/// Prefix reuse changes the length a prefix was prefilled at; set <see cref="RopeScalingLength"/> (e.g. to the
/// prompt length of a needle-grid row) to compute the base from max(that, current length) instead, which makes a
/// reused prefix give exactly what a fresh prefill with the same setting gives. Other scalings do not depend on
/// the length, so the setting does not matter for them.
/// </para>
/// </summary>
public sealed class LlamaGenerator : IDisposable
{
    readonly LlamaModel model;
    readonly KvCache cache;
    readonly Device device;

    public LlamaGenerator(LlamaModel model, GeneratorOptions? options = null)
    {
        this.model = model;
        Options = (options ?? new GeneratorOptions()).Validated();
        cache = new KvCache(model.Config.NumLayers, Options.GrowthTokens);
        device = model.LmHeadWeight.device;
    }

    public GeneratorOptions Options { get; }
    public KvCache Cache => cache;
    /// <summary>Positions in the cache (the same for every sequence of the batch).</summary>
    public int Length => cache.Length;
    /// <summary>When set, dynamic NTK computes its base from max(this, sequence length) (see the class remarks).</summary>
    public int? RopeScalingLength { get; set; }

    /// <summary>
    /// Appends <paramref name="ids"/> [batch, n] (int64) to the cached sequences and returns the logits of their
    /// last position, [batch, vocab] in float32.
    /// </summary>
    public Tensor Prefill(Tensor ids) => Run(ids, allLogits: false);

    public Tensor Prefill(IReadOnlyList<int[]> prompts)
    {
        using var ids = ToTensor(prompts);
        return Prefill(ids);
    }

    /// <summary>Like <see cref="Prefill(Tensor)"/> but returns the logits of every new position, [batch, n, vocab].</summary>
    public Tensor PrefillAllLogits(Tensor ids) => Run(ids, allLogits: true);

    /// <summary>
    /// Prefills <paramref name="promptIds"/> [batch, n] after whatever is cached, then decodes up to
    /// <paramref name="maxNewTokens"/> tokens per sequence, each the argmax of the previous position's logits (ties:
    /// the lowest id, as torch.argmax). A sequence that produces <paramref name="eosId"/> stops there (the EOS
    /// itself is not returned); decoding ends when every sequence has stopped. The cache ends up holding the prompt
    /// and every returned token but the last (which was never fed back).
    /// </summary>
    public int[][] GenerateGreedy(Tensor promptIds, int maxNewTokens, int? eosId = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxNewTokens, 1);
        int batch = (int)promptIds.shape[0];
        cache.Reserve(Length + promptIds.shape[1] + maxNewTokens);
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>(maxNewTokens)).ToArray();
        var finished = new bool[batch];
        var logits = Prefill(promptIds).DetachFromDisposeScope();
        try
        {
            for (int step = 0; step < maxNewTokens; step++)
            {
                using var scope = NewDisposeScope();
                var next = logits.argmax(-1);
                var ids = next.cpu().data<long>().ToArray();
                for (int b = 0; b < batch; b++)
                {
                    if (finished[b]) continue;
                    if (eosId is int eos && ids[b] == eos) finished[b] = true;
                    else outputs[b].Add((int)ids[b]);
                }
                if (step == maxNewTokens - 1 || finished.All(f => f)) break;
                var fed = Prefill(next.unsqueeze(1)).DetachFromDisposeScope();
                logits.Dispose();
                logits = fed;
            }
        }
        finally
        {
            logits.Dispose();
        }
        return outputs.Select(o => o.ToArray()).ToArray();
    }

    public int[][] GenerateGreedy(IReadOnlyList<int[]> prompts, int maxNewTokens, int? eosId = null)
    {
        using var ids = ToTensor(prompts);
        return GenerateGreedy(ids, maxNewTokens, eosId);
    }

    /// <summary>Forgets the positions from <paramref name="length"/> on; the next prefill continues there.</summary>
    public void TruncateTo(int length) => cache.TruncateTo(length);

    /// <summary>Empties the cache (its memory is kept for the next prompt).</summary>
    public void Reset() => cache.TruncateTo(0);

    /// <summary>A device copy of the cached positions (for branching that truncation cannot express).</summary>
    public KvSnapshot Snapshot() => cache.Snapshot();

    public void Restore(KvSnapshot snapshot) => cache.Restore(snapshot);

    Tensor Run(Tensor ids, bool allLogits)
    {
        if (ids.dim() != 2 || ids.shape[1] == 0) throw new ArgumentException("token ids must be [batch, n] with n > 0", nameof(ids));
        using var noGrad = no_grad();
        var input = ids.to(ScalarType.Int64, device); // not disposed: may be the caller's tensor itself
        int n = (int)input.shape[1];
        int end = Length + n;
        int scalingLength = Math.Max(end, RopeScalingLength ?? 0);
        cache.Reserve(end);

        var pieces = new List<Tensor>();
        int chunk = Options.PrefillChunkTokens;
        for (int offset = 0; offset < n; offset += chunk)
        {
            using var scope = NewDisposeScope();
            int length = Math.Min(chunk, n - offset);
            var hidden = model.HiddenWithCache(input.narrow(1, offset, length), cache, Length, scalingLength);
            cache.Length += length;
            if (allLogits) pieces.Add(model.Logits(hidden).MoveToOuterDisposeScope());
            else if (offset + length == n) pieces.Add(model.Logits(hidden.narrow(1, length - 1, 1)).squeeze(1).MoveToOuterDisposeScope());
        }
        if (pieces.Count == 1) return pieces[0];
        var all = cat(pieces, 1);
        foreach (var p in pieces) p.Dispose();
        return all;
    }

    static Tensor ToTensor(IReadOnlyList<int[]> prompts)
    {
        if (prompts.Count == 0) throw new ArgumentException("no prompts", nameof(prompts));
        int width = prompts[0].Length;
        if (prompts.Any(p => p.Length != width)) throw new ArgumentException("prompts of one batch must have equal lengths", nameof(prompts));
        var flat = new long[(long)prompts.Count * width];
        for (int i = 0; i < prompts.Count; i++)
            for (int j = 0; j < width; j++) flat[(long)i * width + j] = prompts[i][j];
        return tensor(flat, [prompts.Count, width], ScalarType.Int64);
    }

    public void Dispose() => cache.Dispose();
}
