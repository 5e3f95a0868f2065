namespace Workflows.Evaluation.Needle;

/// <summary>The constants of the paper's needle test (FranxYao/Long-Context-Data-Engineering, eval/needle).</summary>
public static class PaperNeedle
{
    public const string Needle = "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n";

    public const string Question = "What is the best thing to do in San Francisco?";

    /// <summary>The local-model prompt; "&lt;|im_start|&gt;" is plain text for LLaMA-2.</summary>
    public const string PromptTemplate =
        "<|im_start|> This is a very long story book: <book> {context} </book>.\n Based on the content of the book, Question: {question}\nAnswer:";

    /// <summary><c>final_context_length_buffer</c>: tokens taken off every context length.</summary>
    public const int FinalContextLengthBuffer = 200;

    /// <summary><c>model.generate(input_ids, max_new_tokens=50)</c>.</summary>
    public const int MaxNewTokens = 50;

    /// <summary>The answer visualize.py compares the response with (its word recall).</summary>
    public const string HeatmapExpectedAnswer = "eat a sandwich and sit in Dolores Park on a sunny day.";
}

/// <summary>
/// What is hidden and what is asked. <see cref="Needles"/> are inserted in order (one: the paper's
/// <c>insert_needle</c>; several: gkamradt's <c>insert_needles</c>, spread over the depth that remains).
/// </summary>
/// <param name="Name">Short name recorded in results ("paper", "multi-needle", "ruler-multikey-4x1-number", ...).</param>
/// <param name="Needles">Texts inserted into the haystack.</param>
/// <param name="Question">The retrieval question put into the prompt template.</param>
/// <param name="Reference">What the stored ROUGE-1 score compares the response with (paper: the needle itself).</param>
/// <param name="ExpectedAnswer">What the word-recall scores compare with (paper: visualize.py's hard-coded answer).</param>
/// <param name="ExpectedValues">Strings that must all appear in the answer (RULER's string_match_all); empty for the paper's task.</param>
public sealed record NeedleTask(
    string Name,
    IReadOnlyList<string> Needles,
    string Question,
    string Reference,
    string ExpectedAnswer,
    IReadOnlyList<string> ExpectedValues)
{
    public static NeedleTask Paper { get; } = new("paper", [PaperNeedle.Needle], PaperNeedle.Question,
        PaperNeedle.Needle, PaperNeedle.HeatmapExpectedAnswer, []);

    /// <summary>gkamradt's default multi-needle task: three "secret ingredients" of a perfect pizza.</summary>
    public static NeedleTask GkamradtPizza { get; } = new("multi-needle-pizza",
        [
            " Figs are one of the secret ingredients needed to build the perfect pizza. ",
            " Prosciutto is one of the secret ingredients needed to build the perfect pizza. ",
            " Goat cheese is one of the secret ingredients needed to build the perfect pizza. ",
        ],
        "What are the secret ingredients needed to build the perfect pizza?",
        "Figs, prosciutto and goat cheese are the secret ingredients needed to build the perfect pizza.",
        "figs prosciutto goat cheese",
        ["figs", "prosciutto", "goat cheese"]);
}

/// <summary>Kind of value hidden by a RULER-style needle.</summary>
public enum RulerValueKind
{
    /// <summary>A 7-digit number (RULER: <c>randint(10**6, 10**7 - 1)</c>).</summary>
    Number,

    /// <summary>A version-4 UUID drawn from the seeded stream.</summary>
    Uuid,
}

/// <summary>
/// RULER's retrieval needles (NVIDIA/RULER niah): "One of the special magic {type} for {key} is: {value}." with
/// several keys (multi-key: the other keys are distractors) and several values per key (multi-value: all must be
/// recalled). Everything is drawn from a seed with <see cref="SplitMix64"/>, so a task is reproducible.
/// </summary>
public static class RulerNeedles
{
    // Keys are adjective-noun pairs like RULER's wonderwords keys; a fixed list keeps them reproducible offline.
    private static readonly string[] Adjectives =
    [
        "ancient", "brave", "calm", "damp", "eager", "fancy", "gentle", "hollow", "icy", "jolly", "keen", "lively",
        "mellow", "nimble", "odd", "proud", "quiet", "rapid", "shy", "tidy", "upbeat", "vivid", "witty", "zesty",
    ];

    private static readonly string[] Nouns =
    [
        "anchor", "badger", "candle", "dolphin", "engine", "falcon", "garden", "harbor", "island", "jacket", "kettle",
        "lantern", "meadow", "needle", "orchard", "pepper", "quarry", "river", "saddle", "tunnel", "umbrella",
        "valley", "walrus", "yarn",
    ];

    public static NeedleTask Create(int keys, int valuesPerKey, RulerValueKind kind, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keys, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(valuesPerKey, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(keys, Adjectives.Length * Nouns.Length);
        var rng = new SplitMix64.Stream(unchecked((ulong)seed));
        var keyNames = new List<string>();
        while (keyNames.Count < keys)
        {
            var key = $"{Adjectives[rng.NextInt(Adjectives.Length)]}-{Nouns[rng.NextInt(Nouns.Length)]}";
            if (!keyNames.Contains(key))
            {
                keyNames.Add(key);
            }
        }

        var type = kind == RulerValueKind.Number ? "numbers" : "uuids";
        var needles = new List<(string Key, string Value)>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keyNames)
        {
            for (var v = 0; v < valuesPerKey; v++)
            {
                string value;
                do
                {
                    value = kind == RulerValueKind.Number ? (1_000_000 + rng.NextInt(9_000_000)).ToString(System.Globalization.CultureInfo.InvariantCulture) : NextUuid(rng);
                }
                while (!used.Add(value));
                needles.Add((key, value));
            }
        }

        // Shuffle (Fisher-Yates) so the queried key's needles are not always first in the haystack.
        for (var i = needles.Count - 1; i > 0; i--)
        {
            var j = rng.NextInt(i + 1);
            (needles[i], needles[j]) = (needles[j], needles[i]);
        }

        var query = keyNames[0];
        var expected = needles.Where(n => n.Key == query).Select(n => n.Value).ToList();
        var singular = kind == RulerValueKind.Number ? "number" : "uuid";
        var name = $"ruler-{keys}key-{valuesPerKey}value-{singular}";
        return new NeedleTask(
            name,
            needles.Select(n => $" One of the special magic {type} for {n.Key} is: {n.Value}. ").ToList(),
            $"What are all the special magic {type} for {query} mentioned in the provided text?",
            string.Join(" ", expected.Select(v => $"One of the special magic {type} for {query} is: {v}.")),
            string.Join(" ", expected),
            expected);
    }

    private static string NextUuid(SplitMix64.Stream rng)
    {
        Span<byte> b = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b[..8], rng.Next());
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b[8..], rng.Next());
        b[6] = (byte)((b[6] & 0x0F) | 0x40); // version 4
        b[8] = (byte)((b[8] & 0x3F) | 0x80); // RFC 4122 variant
        var hex = Convert.ToHexStringLower(b);
        return $"{hex[..8]}-{hex[8..12]}-{hex[12..16]}-{hex[16..20]}-{hex[20..]}";
    }
}
