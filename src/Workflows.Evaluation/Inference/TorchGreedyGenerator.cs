using Workflows.DataPrep.Tokenization;
using Workflows.Training.Inference;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Evaluation.Inference;

/// <summary>
/// The needle runner's generator over the TorchSharp LLaMA: greedy decoding with a KV cache, and prefix reuse — after
/// <see cref="PrefillShared"/>, a prompt that starts with the shared prefix only prefills the rest (the cache is
/// truncated back to the prefix between cells). Answers are decoded with special tokens skipped and trimmed, as the
/// paper's code does (<c>skip_special_tokens=True</c>, <c>.strip()</c>).
/// </summary>
public sealed class TorchGreedyGenerator : IPrefixReuseGenerator, IDisposable
{
    private readonly LlamaGenerator generator;
    private readonly ITokenizer tokenizer;
    private int[] prefix = [];

    public TorchGreedyGenerator(LlamaModel model, ITokenizer tokenizer, string modelName, int? ropeScalingLength = null)
    {
        generator = new LlamaGenerator(model) { RopeScalingLength = ropeScalingLength };
        this.tokenizer = tokenizer;
        ModelName = modelName;
    }

    public string ModelName { get; }

    /// <summary>Prefill tokens skipped thanks to the shared prefix, over the generator's life.</summary>
    public long ReusedTokens { get; private set; }

    public void PrefillShared(IReadOnlyList<int> sharedPrefix, CancellationToken cancellationToken)
    {
        generator.Reset();
        prefix = [.. sharedPrefix];
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
        var special = new HashSet<int?> { tokenizer.BosId, tokenizer.EosId };
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
