namespace Workflows.Evaluation.Needle;

/// <summary>How prompts are built; the defaults are the paper's.</summary>
/// <param name="FixBosLeak">
/// Encode haystack and needles with <c>add_special_tokens=False</c> (spec <c>fix_bos_leak</c>): no "&lt;s&gt;" text ends
/// up in the context, and the prompt has exactly one BOS, at position 0. Off by default for fidelity.
/// </param>
/// <param name="FinalContextLengthBuffer">Tokens taken off each context length (paper: 200).</param>
/// <param name="PromptTemplate">Template with "{context}" and "{question}" (paper: the local-model prompt).</param>
/// <param name="TrialSeed">Seed of the haystack offsets of trials ≥ 1 (trial 0 always starts at the beginning).</param>
public sealed record NeedleBuildOptions(
    bool FixBosLeak = false,
    int FinalContextLengthBuffer = PaperNeedle.FinalContextLengthBuffer,
    string PromptTemplate = PaperNeedle.PromptTemplate,
    long TrialSeed = 15213);

/// <summary>
/// One cell's prompt, as the model will see it.
/// </summary>
/// <param name="PromptIds">Token ids of the whole prompt: <c>enc(prompt)</c>, BOS first.</param>
/// <param name="NeedleSpans">Where each inserted needle's tokens (including a leaked BOS) sit in <see cref="PromptIds"/>, in needle order.</param>
/// <param name="InsertionPoints">The paper's <c>insertion_point</c> of each needle: an index into the context token list as it was when that needle went in.</param>
/// <param name="ContextTokenCount">Length of the trimmed context token list before any needle went in.</param>
/// <param name="Context">The decoded context with the needle(s): what the paper saves under contexts/.</param>
/// <param name="Prompt">The prompt text that was tokenised into <see cref="PromptIds"/>.</param>
public sealed record NeedlePrompt(
    long ContextLength,
    int DepthPercent,
    int Trial,
    IReadOnlyList<int> PromptIds,
    IReadOnlyList<TokenSpan> NeedleSpans,
    IReadOnlyList<int> InsertionPoints,
    int ContextTokenCount,
    string Context,
    string Prompt)
{
    /// <summary>Prompt tokens before the first needle: identical for every deeper cell of the same length and trial.</summary>
    public int PrefixBeforeNeedle => NeedleSpans.Min(s => s.Start);
}

/// <summary>
/// Builds needle prompts exactly as the paper's <c>LLMNeedleHaystackTester</c> does for a local (LLaMA) model:
/// <list type="number">
/// <item>haystack = <see cref="Haystack.Text"/> (repeated until it has ≥ max context length tokens);</item>
/// <item><c>encode_and_trim</c>: encode; when longer than the context length L, decode the first L ids;</item>
/// <item><c>insert_needle(s)</c>: encode needle and context again, <c>L -= 200</c>, trim the context to
/// <c>L - len(needle tokens)</c>; depth 100 → append; else <c>insertion_point = int(len(ctx) * (depth / 100))</c>,
/// moved back until the token before it is a period id (or the start), then <c>ctx[:p] + needle + ctx[p:]</c>;</item>
/// <item>decode to text, put it in the prompt template, tokenise the prompt.</item>
/// </list>
/// Every encode/decode goes through <see cref="HfTokenizerBehaviour"/> so the BOS leak happens as in the paper unless
/// <see cref="NeedleBuildOptions.FixBosLeak"/> is set. Work that does not depend on the depth (haystack, trimmed
/// context) is cached per (trial, length). Not thread-safe.
/// </summary>
public sealed class NeedlePromptBuilder
{
    private readonly HfTokenizerBehaviour _tokenizer;
    private readonly Haystack _haystack;
    private readonly long _maxContextLength;
    private readonly Dictionary<int, List<int>> _haystackIds = [];
    private readonly Dictionary<(int Trial, long Length), List<int>> _contexts = [];
    private readonly List<List<int>> _needleIds;
    private readonly string _templateBefore;
    private readonly string _templateAfter;

    public NeedlePromptBuilder(HfTokenizerBehaviour tokenizer, Haystack haystack, NeedleTask task, long maxContextLength, NeedleBuildOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(haystack);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxContextLength, 1);
        if (task.Needles.Count == 0)
        {
            throw new ArgumentException("a needle task needs at least one needle", nameof(task));
        }

        _tokenizer = tokenizer;
        _haystack = haystack;
        Task = task;
        _maxContextLength = maxContextLength;
        Options = options ?? new NeedleBuildOptions();
        var template = Options.PromptTemplate;
        var at = template.IndexOf("{context}", StringComparison.Ordinal);
        if (at < 0)
        {
            throw new ArgumentException("the prompt template has no {context}", nameof(options));
        }

        // Python's f-string substitutes once: the question must not be searched for inside the context.
        _templateBefore = template[..at].Replace("{question}", task.Question, StringComparison.Ordinal);
        _templateAfter = template[(at + "{context}".Length)..].Replace("{question}", task.Question, StringComparison.Ordinal);
        _needleIds = task.Needles.Select(n => tokenizer.Encode(n, AddSpecial)).ToList();
    }

    public NeedleTask Task { get; }

    public NeedleBuildOptions Options { get; }

    private bool AddSpecial => !Options.FixBosLeak;

    /// <summary>The paper's <c>tokens_context</c> for one length before any needle: encode(encode_and_trim(haystack, L)).</summary>
    public IReadOnlyList<int> ContextIds(long contextLength, int trial = 0) => Context(contextLength, trial);

    public NeedlePrompt Build(long contextLength, int depthPercent, int trial = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(depthPercent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(depthPercent, 100);

        var context = Context(contextLength, trial);
        var budget = contextLength - Options.FinalContextLengthBuffer;
        var needleTotal = _needleIds.Sum(n => n.Count);
        var tokens = new List<Chunk>();
        var trimmedCount = context.Count;
        if (context.Count + needleTotal > budget)
        {
            trimmedCount = PythonSliceStop(context.Count, budget - needleTotal);
        }

        tokens.Add(new Chunk(context.GetRange(0, trimmedCount), -1));

        // gkamradt's insert_needles with one needle is the paper's insert_needle; the depth advances by
        // (100 - depth) / k after each needle (a float, as in Python).
        double depth = depthPercent;
        var interval = (100.0 - depthPercent) / _needleIds.Count;
        var insertionPoints = new List<int>();
        for (var k = 0; k < _needleIds.Count; k++)
        {
            var total = tokens.Sum(c => c.Ids.Count);
            int point;
            if (depthPercent == 100)
            {
                point = total;
            }
            else
            {
                point = (int)(total * (depth / 100.0));
                while (point > 0 && !IsPeriod(TokenAt(tokens, point - 1)))
                {
                    point--;
                }

                depth += interval;
            }

            insertionPoints.Add(point);
            Insert(tokens, point, new Chunk(_needleIds[k], k));
        }

        // decode(tokens_new_context), chunk by chunk so each needle's characters are known. Chunks are cut only at
        // the start, the end or after a period id, never inside a UTF-8 byte run, so this equals one decode call.
        var text = new System.Text.StringBuilder();
        var needleChars = new (int Start, int End)[_needleIds.Count];
        Array.Fill(needleChars, (-1, -1));
        foreach (var chunk in tokens)
        {
            var start = text.Length;
            text.Append(text.Length == 0 ? _tokenizer.Decode(chunk.Ids) : _tokenizer.DecodeContinuation(chunk.Ids));
            if (chunk.Needle >= 0 && text.Length > start)
            {
                var (s, e) = needleChars[chunk.Needle];
                needleChars[chunk.Needle] = (s < 0 ? start : s, text.Length);
            }
        }

        var contextText = text.ToString();
        var prompt = string.Concat(_templateBefore, contextText, _templateAfter);
        var (ids, segments) = _tokenizer.EncodeWithSegments(prompt, addSpecialTokens: true);
        var spans = needleChars.Select(r =>
        {
            if (r.Start < 0)
            {
                return new TokenSpan(0, 0);
            }

            var first = _tokenizer.TokenAt(ids, segments, _templateBefore.Length + r.Start);
            var last = _tokenizer.TokenAt(ids, segments, _templateBefore.Length + r.End - 1);
            return new TokenSpan(first, last - first + 1);
        }).ToList();

        return new NeedlePrompt(contextLength, depthPercent, trial, ids, spans, insertionPoints, trimmedCount, contextText, prompt);
    }

    private List<int> Context(long contextLength, int trial)
    {
        if (_contexts.TryGetValue((trial, contextLength), out var cached))
        {
            return cached;
        }

        if (!_haystackIds.TryGetValue(trial, out var haystackIds))
        {
            var text = _haystack.Text(trial, Options.TrialSeed, _maxContextLength, t => _tokenizer.Encode(t, AddSpecial).Count);
            haystackIds = _tokenizer.Encode(text, AddSpecial);
            _haystackIds[trial] = haystackIds;
            _haystackTexts[trial] = text;
        }

        // encode_and_trim: only a haystack longer than L is cut (and only then decoded, which renders the BOS).
        var trimmedText = haystackIds.Count > contextLength
            ? _tokenizer.Decode(haystackIds.GetRange(0, (int)contextLength))
            : _haystackTexts[trial];
        var ids = _tokenizer.Encode(trimmedText, AddSpecial);
        _contexts[(trial, contextLength)] = ids;
        return ids;
    }

    private readonly Dictionary<int, string> _haystackTexts = [];

    private bool IsPeriod(int id)
    {
        foreach (var p in _tokenizer.PeriodIds)
        {
            if (p == id)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Python's <c>len(xs[:stop])</c>: a negative stop counts from the end.</summary>
    internal static int PythonSliceStop(int count, long stop) =>
        stop >= 0 ? (int)Math.Min(count, stop) : (int)Math.Max(0, count + stop);

    private static int TokenAt(List<Chunk> chunks, int index)
    {
        foreach (var c in chunks)
        {
            if (index < c.Ids.Count)
            {
                return c.Ids[index];
            }

            index -= c.Ids.Count;
        }

        throw new ArgumentOutOfRangeException(nameof(index));
    }

    private static void Insert(List<Chunk> chunks, int index, Chunk needle)
    {
        for (var i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            if (index > c.Ids.Count)
            {
                index -= c.Ids.Count;
                continue;
            }

            if (index == 0)
            {
                chunks.Insert(i, needle);
            }
            else if (index == c.Ids.Count)
            {
                chunks.Insert(i + 1, needle);
            }
            else
            {
                chunks[i] = c with { Ids = c.Ids.GetRange(0, index) };
                chunks.Insert(i + 1, needle);
                chunks.Insert(i + 2, c with { Ids = c.Ids.GetRange(index, c.Ids.Count - index) });
            }

            return;
        }

        chunks.Add(needle);
    }

    private sealed record Chunk(List<int> Ids, int Needle);
}
