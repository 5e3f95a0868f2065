namespace Workflows.Evaluation.Inference;

/// <summary>
/// A language model as the needle test uses it: greedy decoding from a prompt of token ids. The TorchSharp LLaMA
/// implements this in the training project; evaluation code depends on nothing else.
/// </summary>
public interface IGreedyGenerator
{
    /// <summary>Name recorded in results (the paper records the model path's last part).</summary>
    string ModelName { get; }

    /// <summary>
    /// Greedy-decodes up to <paramref name="maxNewTokens"/> tokens after <paramref name="promptIds"/> (stopping at
    /// EOS) and returns the new tokens decoded with special tokens skipped and surrounding whitespace trimmed, as
    /// the paper's <c>enc.decode(output_ids[0][n:], skip_special_tokens=True).strip()</c>.
    /// </summary>
    string Generate(IReadOnlyList<int> promptIds, int maxNewTokens, CancellationToken cancellationToken);
}

/// <summary>
/// Optional prefix reuse. Before each <see cref="IGreedyGenerator.Generate"/> the runner calls
/// <see cref="PrefillShared"/> with the prompt's tokens before the (first) needle. The generator makes its KV cache
/// hold exactly that prefix: it keeps the longest common prefix of what it holds (the previous prompt's tokens)
/// and the new prefix, drops the rest, and prefills only what is missing; the following
/// <see cref="IGreedyGenerator.Generate"/> then prefills only the prompt tokens after the prefix.
/// <para>The runner visits the cells of one (trial, length) from the deepest needle to the shallowest (or, with
/// <see cref="Needle.NeedleRunOrder.ByNeedlePosition"/>, all cells by needle position), so each
/// prefix is a prefix of the previous prompt (at depth 0 all but possibly its last token: the template's space before
/// the needle may merge with the next word when haystack follows instead): the cache is truncated, and at most a
/// token is recomputed. The
/// generator must keep the prompt part of its cache after <see cref="IGreedyGenerator.Generate"/> (generated
/// tokens may be dropped).</para>
/// </summary>
public interface IPrefixReuseGenerator : IGreedyGenerator
{
    void PrefillShared(IReadOnlyList<int> prefix, CancellationToken cancellationToken);
}
