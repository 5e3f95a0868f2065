using Workflows.DataPrep.Tokenization;
using Workflows.Training.Inference;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Evaluation.Inference;

/// <summary>
/// The needle runner's generator over the TorchSharp LLaMA: greedy decoding with a KV cache, and prefix reuse — after
/// <see cref="PrefillShared"/>, a prompt that starts with the shared prefix only prefills the rest (the cache is
/// truncated back to the prefix between cells). Decoding is greedy (argmax, no sampling): the paper's code calls
/// <c>model.generate(input_ids, max_new_tokens=50)</c> with no sampling argument (greedy unless a checkpoint's
/// generation_config.json turns sampling on, which the paper does not report), and a needle score that depended on a
/// random draw could not be reproduced or compared between runs. Answers are decoded with every special token dropped and trimmed,
/// as the paper's code does (<c>skip_special_tokens=True</c>, <c>.strip()</c>).
/// </summary>
public sealed class TorchGreedyGenerator : IPrefixReuseGenerator, IDisposable
{
    private readonly LlamaGenerator generator;
    private readonly ITokenizer tokenizer;
    private int[] prefix = [];

    /// <param name="prefixAlignment">
    /// The kept prefix is the shared prefix cut down to a multiple of this many tokens; the cut-off tail is prefilled
    /// with each prompt's rest. Default: the prefill chunk on CUDA, 1 elsewhere. Why: on CUDA, PyTorch runs a masked
    /// chunk through cuDNN attention, which builds a new execution plan for every new key length. A prefix of
    /// arbitrary length makes every chunk of every cell a new shape, and on an H200 the CPU time spent planning ate the
    /// whole saving (reuse 0.95x vs none on a 200M model, 128K grid); aligned to the 4,096-token chunk the key lengths
    /// repeat and the same grid ran 1.43x faster (docs/evaluation.md, "Prefix reuse on an H200").
    /// </param>
    public TorchGreedyGenerator(LlamaModel model, ITokenizer tokenizer, string modelName, int? ropeScalingLength = null, int? prefixAlignment = null)
    {
        generator = new LlamaGenerator(model) { RopeScalingLength = ropeScalingLength };
        this.tokenizer = tokenizer;
        ModelName = modelName;
        bool cuda = model.parameters().FirstOrDefault()?.device_type == TorchSharp.DeviceType.CUDA;
        PrefixAlignment = prefixAlignment ?? (cuda ? generator.Options.PrefillChunkTokens : 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(PrefixAlignment, 1, nameof(prefixAlignment));
    }

    public string ModelName { get; }

    /// <summary>The kept prefix is a multiple of this many tokens (see the constructor).</summary>
    public int PrefixAlignment { get; }

    /// <summary>Prefill tokens skipped thanks to the shared prefix, over the generator's life.</summary>
    public long ReusedTokens { get; private set; }

    public void PrefillShared(IReadOnlyList<int> sharedPrefix, CancellationToken cancellationToken)
    {
        generator.Reset();
        prefix = [.. sharedPrefix.Take(sharedPrefix.Count - sharedPrefix.Count % PrefixAlignment)];
        if (prefix.Length > 0)
        {
            using var scope = NewDisposeScope();
            generator.Prefill([prefix]);
        }
    }

    public string Generate(IReadOnlyList<int> promptIds, int maxNewTokens, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int[] rest;
        if (prefix.Length > 0 && promptIds.Count > prefix.Length && StartsWithPrefix(promptIds))
        {
            generator.TruncateTo(prefix.Length);
            rest = [.. promptIds.Skip(prefix.Length)];
            ReusedTokens += prefix.Length;
        }
        else
        {
            generator.Reset();
            prefix = [];
            rest = [.. promptIds];
        }

        using var scope = NewDisposeScope();
        var ids = generator.GenerateGreedy([rest], maxNewTokens, tokenizer.EosId)[0];
        // HF's skip_special_tokens=True: every special token goes (LLaMA: <unk>, <s>, </s>), not just BOS and EOS.
        var special = tokenizer.SpecialIds;
        return tokenizer.Decode([.. ids.Where(i => !special.Contains(i))]).Trim();
    }

    private bool StartsWithPrefix(IReadOnlyList<int> ids)
    {
        for (var i = 0; i < prefix.Length; i++)
        {
            if (ids[i] != prefix[i])
            {
                return false;
            }
        }

        return true;
    }

    public void Dispose() => generator.Dispose();
}
