using Workflows.DataPrep.Tokenization;

namespace Workflows.Evaluation.Needle;

/// <summary>A run of prompt tokens: <c>[Start, Start + Length)</c>.</summary>
public readonly record struct TokenSpan(int Start, int Length)
{
    public int End => Start + Length;
}

/// <summary>One piece of an encoded text: a special token found as text, or a run of ordinary text encoded alone.</summary>
public readonly record struct EncodedSegment(int CharStart, int CharLength, int TokenStart, int TokenCount, bool IsSpecial);

/// <summary>
/// What HuggingFace transformers' fast tokenizer (<c>AutoTokenizer</c>, transformers 4.35 as pinned by the paper's
/// repository) does around the raw BPE when the paper's needle code calls <c>enc.encode(text)</c>,
/// <c>enc.decode(ids)</c> and <c>enc(prompt)</c> with default arguments. The raw BPE of each text piece is
/// <see cref="ITokenizer"/>'s (SentencePiece-exact for LLaMA-2); this class adds the three things HF does on top:
/// <list type="number">
/// <item><b>encode adds BOS</b> (<c>add_special_tokens=True</c>; LLaMA's post-processor is <c>&lt;s&gt; $A</c>).
/// Tokenizers without a BOS (GPT-2) add nothing.</item>
/// <item><b>special tokens written as text are split out first</b> ("&lt;s&gt;", "&lt;/s&gt;" become ids 1 and 2) and
/// every remaining piece is normalised on its own, so each piece gets SentencePiece's dummy-prefix "▁"
/// (LLaMA's normaliser is Prepend("▁") + Replace(" ", "▁"), applied per piece).</item>
/// <item><b>decode does not skip special tokens</b> (<c>skip_special_tokens=False</c>): BOS is rendered as the text
/// "&lt;s&gt;". The decoder chain Replace("▁"," ") → ByteFallback → Fuse → Strip(" ", 1, 0) strips one leading space
/// of the <i>whole</i> string only, so the text after a rendered "&lt;s&gt;" keeps its leading space.</item>
/// </list>
/// Together these make the paper's BOS leak: see docs/evaluation.md.
/// </summary>
public sealed class HfTokenizerBehaviour
{
    // A one-character text whose ids decode to exactly that character and carry no leading "▁": prefixed to a run
    // of ids, it stops SentencePiece's decoder from stripping the run's own leading space (HF only strips at the
    // very start of the output).
    private const string Anchor = "a";

    private readonly List<int> _anchorIds = [];
    private readonly int _anchorTextLength;
    private readonly (string Text, int Id)[] _specials;

    private HfTokenizerBehaviour(ITokenizer tokenizer, (string Text, int Id)[] specials, IReadOnlyList<int> periodIds)
    {
        Tokenizer = tokenizer;
        _specials = specials;
        PeriodIds = periodIds;
        tokenizer.Encode(Anchor, _anchorIds);
        _anchorTextLength = tokenizer.Decode(_anchorIds).Length;
    }

    public ITokenizer Tokenizer { get; }

    /// <summary>
    /// Ids after which a needle may be inserted. LLaMA-2: 29889 (".") and 869 ("▁."), hard-coded in the paper's code;
    /// any other tokenizer: the ids of <c>encode('.')</c> without special tokens (gkamradt's generic rule).
    /// </summary>
    public IReadOnlyList<int> PeriodIds { get; }

    /// <summary>Special tokens recognised inside text, with their ids ("&lt;s&gt;" → BOS, "&lt;/s&gt;" → EOS).</summary>
    public IReadOnlyList<(string Text, int Id)> SpecialTokens => _specials;

    public static HfTokenizerBehaviour For(ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var specials = new List<(string, int)>();
        if (tokenizer.BosId is { } bos)
        {
            // SentencePiece vocabularies with a BOS name their controls <s> and </s> (LLaMA-2: 1 and 2). GPT-2 has no
            // BOS, and its Encode treats "<|endoftext|>" as ordinary text, as data preparation wants.
            specials.Add(("<s>", bos));
            if (tokenizer.EosId is { } eos)
            {
                specials.Add(("</s>", eos));
            }
        }

        IReadOnlyList<int> periods;
        if (tokenizer is LlamaSentencePieceTokenizer)
        {
            periods = [29889, 869];
        }
        else
        {
            var ids = new List<int>();
            tokenizer.Encode(".", ids);
            periods = ids;
        }

        return new HfTokenizerBehaviour(tokenizer, [.. specials], periods);
    }

    /// <summary><c>enc.encode(text)</c> (<paramref name="addSpecialTokens"/> true) or with <c>add_special_tokens=False</c>.</summary>
    public List<int> Encode(string text, bool addSpecialTokens) => EncodeWithSegments(text, addSpecialTokens).Ids;

    /// <summary><see cref="Encode"/>, also returning where each special token and text piece landed.</summary>
    public (List<int> Ids, List<EncodedSegment> Segments) EncodeWithSegments(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 8);
        var segments = new List<EncodedSegment>();
        if (addSpecialTokens && Tokenizer.BosId is { } bos)
        {
            segments.Add(new EncodedSegment(0, 0, 0, 1, true));
            ids.Add(bos);
        }

        var pieceStart = 0;
        var i = 0;
        while (i < text.Length)
        {
            var special = MatchSpecial(text, i);
            if (special < 0)
            {
                i++;
                continue;
            }

            AddText(pieceStart, i);
            var (specialText, id) = _specials[special];
            segments.Add(new EncodedSegment(i, specialText.Length, ids.Count, 1, true));
            ids.Add(id);
            i += specialText.Length;
            pieceStart = i;
        }

        AddText(pieceStart, text.Length);
        return (ids, segments);

        void AddText(int from, int to)
        {
            if (to <= from)
            {
                return; // HF's Prepend normaliser leaves an empty piece empty: no "▁", no ids
            }

            var before = ids.Count;
            Tokenizer.Encode(text[from..to], ids);
            segments.Add(new EncodedSegment(from, to - from, before, ids.Count - before, false));
        }
    }

    /// <summary><c>enc.decode(ids)</c> with HF defaults: special tokens rendered as their text.</summary>
    public string Decode(IReadOnlyList<int> ids) => Decode(ids, atStart: true);

    /// <summary>
    /// The text <paramref name="ids"/> contribute when they follow other ids in one decode call (no leading-space
    /// strip). <c>Decode(a + b) == Decode(a) + DecodeContinuation(b)</c> whenever the cut splits no UTF-8 byte run.
    /// </summary>
    public string DecodeContinuation(IReadOnlyList<int> ids) => Decode(ids, atStart: false);

    /// <summary>Index of the token of <paramref name="ids"/> (encoded from <paramref name="text"/>) that holds character <paramref name="charIndex"/>.</summary>
    public int TokenAt(List<int> ids, List<EncodedSegment> segments, int charIndex)
    {
        foreach (var s in segments)
        {
            if (s.CharLength == 0 || charIndex < s.CharStart || charIndex >= s.CharStart + s.CharLength)
            {
                continue;
            }

            if (s.IsSpecial)
            {
                return s.TokenStart;
            }

            // Decoding the first k ids of a piece gives its first characters (SentencePiece and byte-level BPE both
            // round-trip). Walk the piece in chunks (a chunk decoded as a continuation of the previous one adds
            // exactly its characters), then binary-search inside the chunk that reaches the character: linear in
            // the distance to it, instead of decoding ever longer prefixes.
            const int ChunkTokens = 2048;
            var target = charIndex - s.CharStart;
            var start = 0;
            var chars = 0;
            while (start < s.TokenCount)
            {
                var end = Math.Min(start + ChunkTokens, s.TokenCount);
                var text = DecodePart(ids, s.TokenStart, start, end);

                // Never cut a multi-byte character's byte pieces apart: they would decode as U+FFFD on both sides.
                for (var extra = 0; extra < 8 && end < s.TokenCount && text.EndsWith('\uFFFD'); extra++)
                {
                    end++;
                    text = DecodePart(ids, s.TokenStart, start, end);
                }

                if (chars + text.Length > target)
                {
                    int lo = start + 1, hi = end;
                    while (lo < hi)
                    {
                        var mid = (lo + hi) / 2;
                        if (chars + DecodePart(ids, s.TokenStart, start, mid).Length > target)
                        {
                            hi = mid;
                        }
                        else
                        {
                            lo = mid + 1;
                        }
                    }

                    return s.TokenStart + lo - 1;
                }

                chars += text.Length;
                start = end;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(charIndex), charIndex, "no segment holds this character");
    }

    // Tokens [from, to) of the piece that starts at ids[pieceStart]: at the piece start decoded as the piece's own
    // first tokens (dummy prefix stripped), later as a continuation.
    private string DecodePart(List<int> ids, int pieceStart, int from, int to)
    {
        var part = ids.GetRange(pieceStart + from, to - from);
        return from == 0 ? Tokenizer.Decode(part) : DecodeContinuation(part);
    }

    private string Decode(IReadOnlyList<int> ids, bool atStart)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (var id in ids)
        {
            var special = SpecialText(id);
            if (special is null)
            {
                run.Add(id);
                continue;
            }

            Flush();
            text.Append(special);
        }

        Flush();
        return text.ToString();

        void Flush()
        {
            if (run.Count == 0)
            {
                return;
            }

            if (atStart && text.Length == 0)
            {
                // HF's Strip(" ", 1) removes one leading space of the whole string: what SentencePiece's decoder does
                // with the dummy prefix of the first piece.
                text.Append(Tokenizer.Decode(run));
            }
            else
            {
                var withAnchor = new List<int>(_anchorIds.Count + run.Count);
                withAnchor.AddRange(_anchorIds);
                withAnchor.AddRange(run);
                text.Append(Tokenizer.Decode(withAnchor).AsSpan(_anchorTextLength));
            }

            run.Clear();
        }
    }

    private string? SpecialText(int id)
    {
        foreach (var (t, i) in _specials)
        {
            if (i == id)
            {
                return t;
            }
        }

        return null;
    }

    private int MatchSpecial(string text, int at)
    {
        var best = -1;
        for (var k = 0; k < _specials.Length; k++)
        {
            var t = _specials[k].Text;
            if (string.CompareOrdinal(text, at, t, 0, t.Length) == 0 && at + t.Length <= text.Length
                && (best < 0 || t.Length > _specials[best].Text.Length))
            {
                best = k;
            }
        }

        return best;
    }
}
