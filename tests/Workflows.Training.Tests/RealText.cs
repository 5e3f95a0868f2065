using Microsoft.ML.Tokenizers;
using Workflows.Training.Data;

namespace Workflows.Training.Tests;

/// <summary>
/// Packed training sequences made from real text: the first documents of the test corpus (SlimPajama-mini's validation
/// chunk, or on a fresh clone the public-domain text of samples/), tokenized with GPT-2's BPE, then renumbered densely in
/// order of first appearance (a bijection on this sample) so that a tiny model's embedding and output layers cover
/// exactly the tokens that occur.
/// </summary>
public sealed class RealText
{
    static readonly Lazy<RealText> shared = new(() => Load(maxTokens: 24_000));

    public static RealText Shared => shared.Value;

    public required IReadOnlyList<int[]> Documents { get; init; }
    public required int VocabularySize { get; init; }

    public List<int[]> Pack(int context) => SequencePacking.Pack(Documents, context);

    static RealText Load(int maxTokens)
    {
        var gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
        var dense = new Dictionary<int, int>();
        var documents = new List<int[]>();
        int total = 0;
        foreach (var line in TestCorpus.SlimPajamaLines)
        {
            if (total >= maxTokens) break;
            var ids = gpt2.EncodeToIds(TestCorpus.TextOf(line));
            var doc = ids.Take(maxTokens - total).Select(id => dense.TryGetValue(id, out int d) ? d : dense[id] = dense.Count).ToArray();
            documents.Add(doc);
            total += doc.Length;
        }
        return new RealText { Documents = documents, VocabularySize = dense.Count };
    }
}
