using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.Inference;
using Workflows.Experiments.Spec;
using Workflows.Training.Inference;

namespace Workflows.Evaluation.DomainLoss;

/// <summary>
/// Runs the model over held-out documents by the definition of <see cref="DomainLossAccumulator"/>: per source, up to
/// <c>documents_per_source</c> documents; each document (with BOS) for the Table 5 buckets, and for every evaluation
/// length the documents packed into sequences of exactly that length (at most <c>documents_per_source</c> sequences).
/// </summary>
public static class DomainLossEvaluation
{
    public static DomainLossReport Run(string experiment, LlamaGenerator generator, ITokenizer tokenizer,
        IEnumerable<(SlimPajamaSource Source, string Text)> documents, DomainLossSpec spec, IProgress<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var accumulator = new DomainLossAccumulator(spec.Buckets);
        var longest = spec.Buckets.Max(b => b.To);
        foreach (var group in documents.GroupBy(d => d.Source))
        {
            var tokens = new List<IReadOnlyList<int>>();
            foreach (var (_, text) in group.Take(spec.DocumentsPerSource))
            {
                var ids = new List<int>();
                tokenizer.Encode(text, ids);
                tokens.Add(ids);
            }

            foreach (var sequence in DomainLossSequences.Documents(tokens, tokenizer.BosId, longest))
            {
                cancellationToken.ThrowIfCancellationRequested();
                accumulator.AddDocument(group.Key, TokenLosses.Compute(generator, sequence));
            }

            foreach (var length in spec.Lengths)
            {
                var count = 0;
                foreach (var sequence in DomainLossSequences.Packed(tokens, tokenizer.BosId, checked((int)length)).Take(spec.DocumentsPerSource))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    accumulator.AddPackedSequence(group.Key, length, TokenLosses.Compute(generator, sequence));
                    count++;
                }

                progress?.Report($"{group.Key}: {tokens.Count} documents, {count} sequence(s) of {length:N0}");
            }
        }

        return accumulator.ToReport(experiment);
    }
}
