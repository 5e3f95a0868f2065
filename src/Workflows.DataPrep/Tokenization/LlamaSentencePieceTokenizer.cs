using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Validation;

namespace Workflows.DataPrep.Tokenization;

/// <summary>
/// LLaMA-2's tokenizer: SentencePiece's BPE model re-implemented so that the ids equal the reference
/// <c>SentencePieceProcessor.encode</c> exactly (verified on every validation document, see docs/tokenizer.md).
/// <para>Rules implemented (sentencepiece normalizer.cc + bpe_model.cc):</para>
/// <list type="number">
/// <item>Normalise: identity mapping, "▁" prepended (add_dummy_prefix) to non-empty text, every ' ' becomes "▁".</item>
/// <item>Split into code points; each is a symbol.</item>
/// <item>Repeatedly merge the adjacent symbol pair whose concatenation is a vocabulary piece with the highest
/// score; among equal scores the leftmost pair wins (SentencePiece's agenda orders by score, then by smaller left
/// index). LLaMA's 16 whitespace pieces all score -1e9, so runs of spaces are decided by this tie rule.</item>
/// <item>A final symbol that is not a vocabulary piece is emitted as its UTF-8 bytes (<c>&lt;0xNN&gt;</c>) when
/// byte_fallback is on, else as unk.</item>
/// </list>
/// <para>Speed: the normalised text is cut before every "▁" that follows a non-"▁" character. This is exact only
/// because no vocabulary piece contains such a boundary (checked when the model is loaded; if a model violated it,
/// the whole text would be one segment), so no merge can cross it and each segment's merges are independent. Short
/// segments ("words") are cached per thread. Encode is safe to call from many threads at once: the model tables
/// are immutable and all scratch memory and caches are per thread.</para>
/// </summary>
public sealed class LlamaSentencePieceTokenizer : ITokenizer
{
    /// <summary>Per-thread cache entries before the cache is cleared (about 8 MB per thread when full).</summary>
    public const int DefaultSegmentCacheCapacity = 1 << 16;

    /// <summary>Segments longer than this are not cached (they rarely repeat and would crowd the cache).</summary>
    private const int MaxCachedSegmentLength = 48;

    /// <summary>Below this many symbols a linear scan for the best pair beats a heap.</summary>
    private const int ScanMergeLimit = 64;

    private const char SpaceSymbol = '\u2581';
    private const int NoSymbol = -1;
    private const ulong EmptyKey = ulong.MaxValue;

    private readonly string[] _pieces;
    private readonly SentencePieceType[] _types;
    private readonly float[] _scores;
    private readonly int _vocabularySize;
    private readonly int[] _bmpSymbol;                      // UTF-16 code unit -> symbol id (vocab id, synthetic id, or NoSymbol)
    private readonly Dictionary<int, int> _supplementarySymbol; // code point >= 0x10000 -> symbol id
    private readonly ulong[] _pairKeys;                     // open addressing: (left symbol, right symbol) -> merged vocab id
    private readonly int[] _pairValues;
    private readonly int _pairMask;
    private readonly int[] _byteIds;                        // byte value -> id of <0xNN>, or null without byte fallback
    private readonly bool _byteFallback;
    private readonly bool _addDummyPrefix;
    private readonly bool _segmentByWords;
    private readonly int _unkId;
    private readonly string _unknownSurface;
    private readonly int _segmentCacheCapacity;

    [ThreadStatic]
    private static EncoderState? t_state;

    private LlamaSentencePieceTokenizer(SentencePieceModel model, string id, int segmentCacheCapacity)
    {
        Id = id;
        _segmentCacheCapacity = segmentCacheCapacity;
        var count = model.Pieces.Count;
        _vocabularySize = count;
        _pieces = new string[count];
        _types = new SentencePieceType[count];
        _scores = new float[count];
        var normal = new Dictionary<string, int>(count, StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var entry = model.Pieces[i];
            _pieces[i] = entry.Piece;
            _types[i] = entry.Type;
            _scores[i] = entry.Score;
            if (entry.Type == SentencePieceType.Normal)
            {
                normal[entry.Piece] = i;
            }
        }

        _byteFallback = model.ByteFallback;
        _addDummyPrefix = model.AddDummyPrefix;
        _unkId = model.UnkId;
        _unknownSurface = model.UnknownSurface;
        BosId = model.BosId >= 0 ? model.BosId : null;
        EosId = model.EosId >= 0 ? model.EosId : null;
        SpecialIds = Enumerable.Range(0, count).Where(i => _types[i] is SentencePieceType.Control or SentencePieceType.Unknown).ToHashSet();

        _byteIds = new int[256];
        if (_byteFallback)
        {
            for (var i = 0; i < count; i++)
            {
                if (_types[i] == SentencePieceType.Byte)
                {
                    _byteIds[ParseBytePiece(_pieces[i])] = i;
                }
            }
        }

        // Symbols: every code point that occurs in some normal piece gets an id (its own piece id when the code point
        // alone is a piece, else a synthetic id >= vocabulary size) so merges can start from it; any other code
        // point can never merge and has NoSymbol.
        _bmpSymbol = new int[65536];
        Array.Fill(_bmpSymbol, NoSymbol);
        _supplementarySymbol = [];
        var nextSynthetic = count;
        foreach (var (piece, pieceId) in normal)
        {
            for (var k = 0; k < piece.Length;)
            {
                var rune = Rune.GetRuneAt(piece, k);
                if (GetSymbol(rune.Value) == NoSymbol)
                {
                    SetSymbol(rune.Value, normal.TryGetValue(rune.ToString(), out var own) ? own : nextSynthetic++);
                }

                k += rune.Utf16SequenceLength;
            }
        }

        // Merge table: every split of a normal piece into two parts that can both be symbols.
        var pairs = new List<(ulong Key, int Value)>();
        foreach (var (piece, pieceId) in normal)
        {
            for (var k = 0; k < piece.Length;)
            {
                k += char.IsHighSurrogate(piece[k]) && k + 1 < piece.Length ? 2 : 1;
                if (k >= piece.Length)
                {
                    break;
                }

                var left = SymbolOfText(piece.AsSpan(0, k), normal);
                var right = SymbolOfText(piece.AsSpan(k), normal);
                if (left != NoSymbol && right != NoSymbol)
                {
                    pairs.Add((PairKey(left, right), pieceId));
                }
            }
        }

        var capacity = 1;
        while (capacity < pairs.Count * 2)
        {
            capacity <<= 1;
        }

        _pairMask = capacity - 1;
        _pairKeys = new ulong[capacity];
        _pairValues = new int[capacity];
        Array.Fill(_pairKeys, EmptyKey);
        foreach (var (key, value) in pairs)
        {
            var slot = Hash(key) & _pairMask;
            while (_pairKeys[slot] != EmptyKey)
            {
                slot = (slot + 1) & _pairMask;
            }

            _pairKeys[slot] = key;
            _pairValues[slot] = value;
        }

        // Word segmentation is exact iff no piece has a "▁" right after a non-"▁" character (see class comment).
        _segmentByWords = !normal.Keys.Any(HasSpaceAfterNonSpace);
    }

    /// <summary>Format "llama2-sp:&lt;first 12 hex digits of the model file's SHA-256&gt;".</summary>
    public string Id { get; }

    public int VocabularySize => _vocabularySize;

    public int? BosId { get; }

    public int? EosId { get; }

    /// <summary>UNK and the control pieces (LLaMA-2: &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2), HF's special tokens.</summary>
    public IReadOnlySet<int> SpecialIds { get; }

    /// <summary>True when the model allows the exact word-level segmentation that makes caching possible.</summary>
    public bool SegmentsByWords => _segmentByWords;

    /// <summary>
    /// Loads a SentencePiece <c>tokenizer.model</c>. Throws <see cref="InvalidDataException"/> when the file is not a
    /// SentencePiece model and <see cref="NotSupportedException"/> when it is one this class does not implement
    /// (anything but BPE with identity normalisation); both messages name the file.
    /// </summary>
    public static LlamaSentencePieceTokenizer Load(string modelPath, int segmentCacheCapacity = DefaultSegmentCacheCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(segmentCacheCapacity);
        var model = SentencePieceModel.Load(modelPath);
        var problem = UnsupportedFeature(model);
        if (problem is not null)
        {
            throw new NotSupportedException($"SentencePiece model '{modelPath}' is not supported: {problem}");
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(PathPolicy.Current.ReadAllBytes(modelPath, PathRules.MaxTokenizerBytes)));
        return new LlamaSentencePieceTokenizer(model, "llama2-sp:" + hash[..12], segmentCacheCapacity);
    }

    private static string? UnsupportedFeature(SentencePieceModel model)
    {
        if (model.ModelType != SentencePieceModelType.Bpe)
        {
            return $"model type is {model.ModelType}; only BPE (LLaMA-2's) is implemented";
        }

        if (model.PrecompiledCharsMapLength > 0)
        {
            return $"normalizer '{model.NormalizerName}' has a precompiled character map; only the identity normalizer is implemented";
        }

        if (model.RemoveExtraWhitespaces || !model.EscapeWhitespaces || model.TreatWhitespaceAsSuffix)
        {
            return "whitespace handling differs from LLaMA-2's (remove_extra_whitespaces=false, escape_whitespaces=true, treat_whitespace_as_suffix=false)";
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var bytePieces = 0;
        var unknown = 0;
        for (var i = 0; i < model.Pieces.Count; i++)
        {
            var piece = model.Pieces[i];
            if (!seen.Add(piece.Piece))
            {
                return $"piece '{piece.Piece}' occurs twice (id {i})";
            }

            switch (piece.Type)
            {
                case SentencePieceType.UserDefined or SentencePieceType.Unused:
                    return $"piece #{i} '{piece.Piece}' has type {piece.Type}, which this implementation does not handle";
                case SentencePieceType.Byte:
                    if (!TryParseBytePiece(piece.Piece, out _))
                    {
                        return $"byte piece #{i} '{piece.Piece}' is not of the form <0xNN>";
                    }

                    bytePieces++;
                    break;
                case SentencePieceType.Unknown:
                    unknown++;
                    break;
            }
        }

        if (model.ByteFallback && bytePieces != 256)
        {
            return $"byte_fallback is on but the vocabulary has {bytePieces} byte pieces, not 256";
        }

        if (unknown != 1 || model.UnkId < 0 || model.UnkId >= model.Pieces.Count || model.Pieces[model.UnkId].Type != SentencePieceType.Unknown)
        {
            return $"expected exactly one unknown piece at unk_id {model.UnkId}";
        }

        if (model.BosId >= model.Pieces.Count || model.EosId >= model.Pieces.Count)
        {
            return $"bos_id {model.BosId} or eos_id {model.EosId} is outside the vocabulary";
        }

        return null;
    }

    public void Encode(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
        if (text.Length == 0)
        {
            return; // SentencePiece adds no dummy prefix to empty input
        }

        var state = t_state;
        if (state is null || !ReferenceEquals(state.Owner, this))
        {
            t_state = state = new EncoderState(this);
        }

        EncodeCore(text, ids, state, useCache: _segmentCacheCapacity > 0, forceHeap: false);
    }

    /// <summary>Same as <see cref="Encode"/> but returns a new list.</summary>
    public List<int> Encode(string text)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        Encode(text, ids);
        return ids;
    }

    /// <summary>Uncached encode through one merge strategy; lets tests prove the fast paths change nothing.</summary>
    internal List<int> EncodeUncached(string text, bool forceHeap)
    {
        var ids = new List<int>();
        if (text.Length > 0)
        {
            EncodeCore(text, ids, new EncoderState(this), useCache: false, forceHeap);
        }

        return ids;
    }

    private void EncodeCore(string text, List<int> ids, EncoderState state, bool useCache, bool forceHeap)
    {
        var normalized = state.Normalize(text, _addDummyPrefix);
        var start = 0;
        while (start < normalized.Length)
        {
            var end = normalized.Length;
            if (_segmentByWords)
            {
                // next "▁" that follows a non-"▁"
                var search = start + 1;
                while (search < normalized.Length)
                {
                    var found = normalized[search..].IndexOf(SpaceSymbol);
                    if (found < 0)
                    {
                        break;
                    }

                    var at = search + found;
                    if (normalized[at - 1] != SpaceSymbol)
                    {
                        end = at;
                        break;
                    }

                    search = at + 1;
                }
            }

            var segment = normalized[start..end];
            if (useCache && segment.Length <= MaxCachedSegmentLength)
            {
                if (state.CacheLookup.TryGetValue(segment, out var cached))
                {
                    ids.AddRange(cached);
                }
                else
                {
                    var before = ids.Count;
                    EncodeSegment(segment, ids, state, forceHeap);
                    if (state.Cache.Count >= _segmentCacheCapacity)
                    {
                        state.Cache.Clear(); // a simple bound; documents are processed whole, so a reset costs little
                    }

                    state.Cache.Add(segment.ToString(), CollectionsMarshal.AsSpan(ids)[before..].ToArray());
                }
            }
            else
            {
                EncodeSegment(segment, ids, state, forceHeap);
            }

            start = end;
        }
    }

    private void EncodeSegment(ReadOnlySpan<char> segment, List<int> ids, EncoderState state, bool forceHeap)
    {
        state.EnsureSymbolCapacity(segment.Length);
        var symbolId = state.SymbolId;
        var symbolStart = state.SymbolStart;
        var symbolLength = state.SymbolLength;
        var n = 0;
        for (var i = 0; i < segment.Length;)
        {
            var c = segment[i];
            int length = 1, symbol;
            if (!char.IsSurrogate(c))
            {
                symbol = _bmpSymbol[c];
            }
            else if (char.IsHighSurrogate(c) && i + 1 < segment.Length && char.IsLowSurrogate(segment[i + 1]))
            {
                length = 2;
                symbol = _supplementarySymbol.GetValueOrDefault(char.ConvertToUtf32(c, segment[i + 1]), NoSymbol);
            }
            else
            {
                symbol = _bmpSymbol['\uFFFD']; // a lone surrogate is what UTF-8 encoding turns into U+FFFD
            }

            symbolId[n] = symbol;
            symbolStart[n] = i;
            symbolLength[n] = length;
            n++;
            i += length;
        }

        if (n > 1)
        {
            if (n <= ScanMergeLimit && !forceHeap)
            {
                n = MergeByScan(state, n);
                EmitInOrder(segment, ids, state, n, linked: false);
            }
            else
            {
                MergeByHeap(state, n);
                EmitInOrder(segment, ids, state, n, linked: true);
            }
        }
        else
        {
            EmitInOrder(segment, ids, state, n, linked: false);
        }
    }

    /// <summary>
    /// Quadratic but allocation-free merging for short segments: symbols stay in a compact array in text order, and
    /// each step merges the best pair (highest score; the strict comparison keeps the leftmost among equals).
    /// </summary>
    private int MergeByScan(EncoderState state, int n)
    {
        var id = state.SymbolId;
        var start = state.SymbolStart;
        var length = state.SymbolLength;
        var pair = state.PairMerged;
        for (var k = 0; k + 1 < n; k++)
        {
            pair[k] = LookupPair(id[k], id[k + 1]);
        }

        while (true)
        {
            var best = -1;
            var bestScore = 0f;
            for (var k = 0; k + 1 < n; k++)
            {
                var merged = pair[k];
                if (merged >= 0 && (best < 0 || _scores[merged] > bestScore))
                {
                    best = k;
                    bestScore = _scores[merged];
                }
            }

            if (best < 0)
            {
                return n;
            }

            id[best] = pair[best];
            length[best] += length[best + 1];
            var tail = n - best - 2;
            if (tail > 0)
            {
                Array.Copy(id, best + 2, id, best + 1, tail);
                Array.Copy(start, best + 2, start, best + 1, tail);
                Array.Copy(length, best + 2, length, best + 1, tail);
                Array.Copy(pair, best + 2, pair, best + 1, tail);
            }

            n--;
            if (best > 0)
            {
                pair[best - 1] = LookupPair(id[best - 1], id[best]);
            }

            pair[best] = best + 1 < n ? LookupPair(id[best], id[best + 1]) : -1;
        }
    }

    /// <summary>
    /// SentencePiece's own algorithm for long segments: a linked list of symbols and an agenda (max-heap) of candidate
    /// pairs ordered by score, then by smaller left index; stale agenda entries are skipped when popped.
    /// </summary>
    private void MergeByHeap(EncoderState state, int n)
    {
        var id = state.SymbolId;
        var length = state.SymbolLength;
        var prev = state.Prev;
        var next = state.Next;
        var heap = state.Heap;
        heap.Clear();
        for (var k = 0; k < n; k++)
        {
            prev[k] = k - 1;
            next[k] = k + 1 < n ? k + 1 : -1;
        }

        for (var k = 0; k + 1 < n; k++)
        {
            TryPush(k, k + 1);
        }

        while (heap.Count > 0)
        {
            var top = heap.Pop();
            var left = top.Left;
            var right = top.Right;
            if (length[left] == 0 || length[right] == 0 || next[left] != right || length[left] + length[right] != top.Size)
            {
                continue; // stale: one side was merged away or grew since this pair was queued
            }

            id[left] = top.Merged;
            length[left] += length[right];
            length[right] = 0;
            next[left] = next[right];
            if (next[right] >= 0)
            {
                prev[next[right]] = left;
            }

            if (prev[left] >= 0)
            {
                TryPush(prev[left], left);
            }

            if (next[left] >= 0)
            {
                TryPush(left, next[left]);
            }
        }

        void TryPush(int left, int right)
        {
            var merged = LookupPair(id[left], id[right]);
            if (merged >= 0)
            {
                heap.Push(new CandidatePair(_scores[merged], left, right, length[left] + length[right], merged));
            }
        }
    }

    private void EmitInOrder(ReadOnlySpan<char> segment, List<int> ids, EncoderState state, int n, bool linked)
    {
        var id = state.SymbolId;
        var start = state.SymbolStart;
        var length = state.SymbolLength;
        Span<byte> utf8 = stackalloc byte[8];
        for (var k = 0; k >= 0 && k < n; k = linked ? state.Next[k] : k + 1)
        {
            var symbol = id[k];
            if ((uint)symbol < (uint)_vocabularySize)
            {
                ids.Add(symbol);
            }
            else if (_byteFallback)
            {
                var written = Encoding.UTF8.GetBytes(segment.Slice(start[k], length[k]), utf8);
                for (var b = 0; b < written; b++)
                {
                    ids.Add(_byteIds[utf8[b]]);
                }
            }
            else
            {
                ids.Add(_unkId);
            }
        }
    }

    public string Decode(IReadOnlyList<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var pendingBytes = new List<byte>();
        var atStart = true; // SentencePiece strips the dummy "▁" from the first piece that is not a control piece
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)_vocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"id outside the vocabulary of {_vocabularySize}");
            }

            var type = _types[id];
            if (type == SentencePieceType.Control)
            {
                continue; // <s>, </s> are invisible
            }

            if (type == SentencePieceType.Byte)
            {
                pendingBytes.Add(ParseBytePiece(_pieces[id]));
                atStart = false;
                continue;
            }

            FlushBytes();
            if (type == SentencePieceType.Unknown)
            {
                text.Append(_unknownSurface);
            }
            else
            {
                var piece = _pieces[id].AsSpan();
                if (atStart && _addDummyPrefix && piece[0] == SpaceSymbol)
                {
                    piece = piece[1..];
                }

                foreach (var c in piece)
                {
                    text.Append(c == SpaceSymbol ? ' ' : c);
                }
            }

            atStart = false;
        }

        FlushBytes();
        return text.ToString();

        // Byte pieces are decoded as UTF-8 together; like SentencePiece, every byte that does not start a valid
        // sequence becomes one U+FFFD, and the dummy-prefix rule does not apply to them.
        void FlushBytes()
        {
            var bytes = CollectionsMarshal.AsSpan(pendingBytes);
            while (!bytes.IsEmpty)
            {
                if (Rune.DecodeFromUtf8(bytes, out var rune, out var consumed) == System.Buffers.OperationStatus.Done)
                {
                    text.Append(rune.ToString());
                    bytes = bytes[consumed..];
                }
                else
                {
                    text.Append('\uFFFD');
                    bytes = bytes[1..];
                }
            }

            pendingBytes.Clear();
        }
    }

    private int LookupPair(int left, int right)
    {
        if (left < 0 || right < 0)
        {
            return -1;
        }

        var key = PairKey(left, right);
        var slot = Hash(key) & _pairMask;
        while (true)
        {
            var k = _pairKeys[slot];
            if (k == key)
            {
                return _pairValues[slot];
            }

            if (k == EmptyKey)
            {
                return -1;
            }

            slot = (slot + 1) & _pairMask;
        }
    }

    private static bool HasSpaceAfterNonSpace(string piece)
    {
        for (var k = 1; k < piece.Length; k++)
        {
            if (piece[k] == SpaceSymbol && piece[k - 1] != SpaceSymbol)
            {
                return true;
            }
        }

        return false;
    }

    private static ulong PairKey(int left, int right) => ((ulong)(uint)left << 32) | (uint)right;

    private static int Hash(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> 32);

    private int GetSymbol(int codePoint) =>
        codePoint < 0x10000 ? _bmpSymbol[codePoint] : _supplementarySymbol.GetValueOrDefault(codePoint, NoSymbol);

    private void SetSymbol(int codePoint, int symbol)
    {
        if (codePoint < 0x10000)
        {
            _bmpSymbol[codePoint] = symbol;
        }
        else
        {
            _supplementarySymbol[codePoint] = symbol;
        }
    }

    private int SymbolOfText(ReadOnlySpan<char> text, Dictionary<string, int> normal)
    {
        if (normal.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(text, out var id))
        {
            return id;
        }

        // Not a piece: it can still be a symbol if it is a single code point (a synthetic symbol).
        var isSingle = text.Length == 1 || (text.Length == 2 && char.IsSurrogatePair(text[0], text[1]));
        return isSingle ? GetSymbol(text.Length == 1 ? text[0] : char.ConvertToUtf32(text[0], text[1])) : NoSymbol;
    }

    private static byte ParseBytePiece(string piece) =>
        TryParseBytePiece(piece, out var value) ? value : throw new InvalidDataException($"bad byte piece '{piece}'");

    private static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
               byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
    }

    private readonly record struct CandidatePair(float Score, int Left, int Right, int Size, int Merged)
    {
        /// <summary>SentencePiece's SymbolPairComparator: higher score first, then smaller left index.</summary>
        public bool ComesBefore(CandidatePair other) => Score > other.Score || (Score == other.Score && Left < other.Left);
    }

    /// <summary>A binary max-heap of candidate pairs (PriorityQueue cannot be reused without reallocating its comparer).</summary>
    private sealed class CandidateHeap
    {
        private CandidatePair[] _items = new CandidatePair[256];

        public int Count { get; private set; }

        public void Clear() => Count = 0;

        public void Push(CandidatePair item)
        {
            if (Count == _items.Length)
            {
                Array.Resize(ref _items, _items.Length * 2);
            }

            var i = Count++;
            while (i > 0)
            {
                var parent = (i - 1) >> 1;
                if (!item.ComesBefore(_items[parent]))
                {
                    break;
                }

                _items[i] = _items[parent];
                i = parent;
            }

            _items[i] = item;
        }

        public CandidatePair Pop()
        {
            var top = _items[0];
            var last = _items[--Count];
            var i = 0;
            while (true)
            {
                var child = (2 * i) + 1;
                if (child >= Count)
                {
                    break;
                }

                if (child + 1 < Count && _items[child + 1].ComesBefore(_items[child]))
                {
                    child++;
                }

                if (!_items[child].ComesBefore(last))
                {
                    break;
                }

                _items[i] = _items[child];
                i = child;
            }

            if (Count > 0)
            {
                _items[i] = last;
            }

            return top;
        }
    }

    /// <summary>Scratch buffers and the segment cache of one thread for one tokenizer.</summary>
    private sealed class EncoderState
    {
        private char[] _normalized = new char[1024];

        public EncoderState(LlamaSentencePieceTokenizer owner)
        {
            Owner = owner;
            Cache = new Dictionary<string, int[]>(StringComparer.Ordinal);
            CacheLookup = Cache.GetAlternateLookup<ReadOnlySpan<char>>();
        }

        public LlamaSentencePieceTokenizer Owner { get; }

        public Dictionary<string, int[]> Cache { get; }

        public Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> CacheLookup { get; }

        public int[] SymbolId { get; private set; } = new int[256];

        public int[] SymbolStart { get; private set; } = new int[256];

        public int[] SymbolLength { get; private set; } = new int[256];

        public int[] PairMerged { get; private set; } = new int[256];

        public int[] Prev { get; private set; } = new int[256];

        public int[] Next { get; private set; } = new int[256];

        public CandidateHeap Heap { get; } = new();

        public void EnsureSymbolCapacity(int n)
        {
            if (SymbolId.Length < n)
            {
                var size = Math.Max(n, SymbolId.Length * 2);
                SymbolId = new int[size];
                SymbolStart = new int[size];
                SymbolLength = new int[size];
                PairMerged = new int[size];
                Prev = new int[size];
                Next = new int[size];
            }
        }

        /// <summary>SentencePiece's identity normaliser: dummy prefix "▁", then every ' ' as "▁".</summary>
        public ReadOnlySpan<char> Normalize(string text, bool addDummyPrefix)
        {
            var needed = text.Length + 1;
            if (_normalized.Length < needed)
            {
                _normalized = new char[Math.Max(needed, _normalized.Length * 2)];
            }

            var offset = addDummyPrefix ? 1 : 0;
            _normalized[0] = SpaceSymbol;
            text.AsSpan().Replace(_normalized.AsSpan(offset, text.Length), ' ', SpaceSymbol);
            return _normalized.AsSpan(0, text.Length + offset);
        }
    }
}
