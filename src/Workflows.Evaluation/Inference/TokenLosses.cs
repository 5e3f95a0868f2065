using Workflows.Training.Inference;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workflows.Evaluation.Inference;

/// <summary>
/// Per-target cross-entropy of a sequence under the TorchSharp LLaMA, for the domain-loss evaluation: for n ids the
/// n − 1 natural-log losses of targets 1 … n − 1 (the accumulator's contract). The sequence goes through the KV cache
/// in chunks, so logits of at most one chunk ([chunk, vocab] in float32) exist at a time: a 128K sequence never needs
/// 128K × vocab logits.
/// </summary>
public static class TokenLosses
{
    public static float[] Compute(LlamaGenerator generator, IReadOnlyList<int> ids, int chunk = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ids.Count, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        generator.Reset();
        var losses = new float[ids.Count - 1];
        using var noGrad = no_grad();
        for (var start = 0; start < ids.Count - 1; start += chunk)
        {
            // Inputs start..end-1 predict targets start+1..end.
            var end = Math.Min(ids.Count - 1, start + chunk);
            var n = end - start;
            using var scope = NewDisposeScope();
            var input = tensor(ids.Skip(start).Take(n).Select(i => (long)i).ToArray(), [1, n], ScalarType.Int64);
            var logits = generator.PrefillAllLogits(input);
            var targets = tensor(ids.Skip(start + 1).Take(n).Select(i => (long)i).ToArray(), ScalarType.Int64).to(logits.device);
            var loss = F.cross_entropy(logits.reshape(n, logits.shape[^1]), targets, reduction: nn.Reduction.None);
            loss.to(ScalarType.Float32).cpu().data<float>().CopyTo(losses, start);
        }

        return losses;
    }
}
