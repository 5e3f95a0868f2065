namespace Workflows.DataPrep.Tokenization;

/// <summary>
/// A text tokenizer as data preparation and evaluation see it: text in, ids out, no special tokens added.
/// Callers add BOS/EOS themselves so that packing controls exactly where they go.
/// </summary>
public interface ITokenizer
{
    /// <summary>Short identifier recorded in manifests (e.g. "llama2-sp:&lt;sha256 prefix&gt;", "gpt2").</summary>
    string Id { get; }

    int VocabularySize { get; }

    /// <summary>Beginning-of-sequence id (LLaMA-2: 1), or null when the vocabulary has none.</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence id (LLaMA-2: 2), or null when the vocabulary has none.</summary>
    int? EosId { get; }

    /// <summary>
    /// Ids a HuggingFace tokenizer counts as special tokens, which <c>decode(..., skip_special_tokens=True)</c> drops:
    /// BOS and EOS here; SentencePiece vocabularies add UNK and every control piece.
    /// </summary>
    IReadOnlySet<int> SpecialIds => new HashSet<int>(new[] { BosId, EosId }.OfType<int>());

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="ids"/>; adds no BOS/EOS.</summary>
    void Encode(string text, List<int> ids);

    string Decode(IReadOnlyList<int> ids);
}
