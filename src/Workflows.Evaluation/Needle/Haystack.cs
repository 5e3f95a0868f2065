using System.Security.Cryptography;
using System.Text;
using Workflows.Experiments.Paths;

namespace Workflows.Evaluation.Needle;

/// <summary>One haystack file as Python's <c>open(file, 'r').read()</c> returns it.</summary>
public sealed record HaystackFile(string Name, string Text);

/// <summary>
/// The background text of the needle test: every <c>*.txt</c> of a folder, in file-name order (ordinal, as Python's
/// <c>sorted()</c>; the paper's <c>glob</c> order was unsorted and filesystem-dependent), concatenated and repeated
/// until the token count reaches the longest context, exactly as <c>read_context_files</c> does.
/// </summary>
public sealed class Haystack
{
    private static readonly char[] SentenceEnds = ['.', '!', '?'];

    /// <summary>
    /// The public-domain haystack shipped in samples/haystack, found from the working folder or the app's folder
    /// (the default when an experiment names none).
    /// </summary>
    public static string DefaultDirectory()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = start; d is not null; d = Path.GetDirectoryName(d))
            {
                var candidate = Path.Combine(d, "samples", "haystack");
                if (Directory.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return Path.Combine("samples", "haystack");
    }
    private int[]? _sentenceStarts;

    public Haystack(IReadOnlyList<HaystackFile> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (files.Count == 0 || files.All(f => f.Text.Length == 0))
        {
            throw new ArgumentException("a haystack needs at least one non-empty .txt file", nameof(files));
        }

        Files = files;
        Cycle = string.Concat(files.Select(f => f.Text));
        ContentHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            string.Join("\0", files.Select(f => f.Name + "\0" + f.Text)))));
    }

    public IReadOnlyList<HaystackFile> Files { get; }

    /// <summary>All files concatenated once: one pass of the paper's <c>for file in glob(...)</c> loop.</summary>
    public string Cycle { get; }

    /// <summary>SHA-256 over file names and texts: identifies the haystack in result files.</summary>
    public string ContentHash { get; }

    /// <summary>
    /// Reads every <c>*.txt</c> directly in <paramref name="directory"/>, sorted by name (ordinal). Text is decoded as
    /// UTF-8 with a BOM kept as U+FEFF and newlines translated like Python's text mode ("\r\n" and "\r" → "\n").
    /// </summary>
    /// <remarks>
    /// Through the path policy (<see cref="PathPolicy.Current"/>): the folder and each file must be readable regular files
    /// inside the allowed roots, and each file at most <see cref="MaxFileBytes"/>.
    /// </remarks>
    public static Haystack LoadDirectory(string directory)
    {
        var policy = PathPolicy.Current;
        if (policy.Check(directory, PathUse.Folder) is { Kind: FileKind.Missing, Problem: null })
        {
            throw new DirectoryNotFoundException($"haystack folder {PathPolicy.Show(directory)} does not exist");
        }

        var files = policy.EnumerateFiles(directory, "*.txt", recursive: false)
            .Select(p => (Path: p, Name: Path.GetFileName(p)))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .Select(f => new HaystackFile(f.Name, ReadLikePython(f.Path)))
            .ToList();
        if (files.Count == 0)
        {
            throw new ArgumentException($"haystack folder {PathPolicy.Show(directory)} has no .txt files", nameof(directory));
        }

        return new Haystack(files);
    }

    /// <summary>Character offsets where a sentence starts: after '.', '!' or '?' and whitespace; 0 is always one.</summary>
    public IReadOnlyList<int> SentenceStarts => _sentenceStarts ??= FindSentenceStarts(Cycle);

    /// <summary>
    /// Where trial <paramref name="trial"/> starts reading the haystack: trial 0 at 0 (the paper), trial t ≥ 1 at a
    /// sentence start drawn by SplitMix64(seed, t), so repeated trials see the needle among different text.
    /// </summary>
    public int TrialOffset(int trial, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(trial);
        if (trial == 0)
        {
            return 0;
        }

        var starts = SentenceStarts;
        var draw = SplitMix64.Mix(unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)trial));
        return starts[(int)(draw % (ulong)starts.Count)];
    }

    /// <summary>
    /// The haystack text of one trial: the cycle read from <see cref="TrialOffset"/> (wrapping to its start), with
    /// whole cycles appended while <paramref name="countTokens"/> of the text is below <paramref name="minTokens"/>,
    /// as the paper's <c>while get_context_length_in_tokens(context) &lt; max_context_length</c> loop.
    /// </summary>
    public string Text(int trial, long seed, long minTokens, Func<string, int> countTokens)
    {
        ArgumentNullException.ThrowIfNull(countTokens);
        var offset = TrialOffset(trial, seed);
        var first = offset == 0 ? Cycle : string.Concat(Cycle.AsSpan(offset), Cycle.AsSpan(0, offset));
        var builder = new StringBuilder();
        if (countTokens(string.Empty) >= minTokens)
        {
            return string.Empty;
        }

        // Estimate the number of cycles from one encode of the first, then confirm on the real concatenation
        // (tokens of a concatenation are not exactly the sum of the parts).
        var perCycle = Math.Max(1, countTokens(first));
        var cycles = (int)Math.Max(1, Math.Min(1_000_000, (minTokens + perCycle - 1) / perCycle));
        for (var c = 0; c < cycles; c++)
        {
            builder.Append(first);
        }

        var text = builder.ToString();
        while (countTokens(text) < minTokens)
        {
            builder.Append(first);
            text = builder.ToString();
        }

        // The loop above may overshoot the paper's count by a cycle when the estimate was high; the paper stops at
        // the first count ≥ minTokens. Trim whole cycles back while the shorter text still suffices.
        while (builder.Length > first.Length && countTokens(text[..^first.Length]) >= minTokens)
        {
            builder.Length -= first.Length;
            text = builder.ToString();
        }

        return text;
    }

    /// <summary>One haystack file: the paper's essays are 10-70 KB each; a file this large is not an essay.</summary>
    public const long MaxFileBytes = 64L << 20;

    internal static string ReadLikePython(string path)
    {
        var text = Encoding.UTF8.GetString(PathPolicy.Current.ReadAllBytes(path, MaxFileBytes));
        return text.Contains('\r', StringComparison.Ordinal) ? text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n') : text;
    }

    private static int[] FindSentenceStarts(string text)
    {
        var starts = new List<int> { 0 };
        for (var i = 1; i < text.Length; i++)
        {
            if (Array.IndexOf(SentenceEnds, text[i - 1]) < 0 || !char.IsWhiteSpace(text[i]))
            {
                continue;
            }

            var j = i;
            while (j < text.Length && char.IsWhiteSpace(text[j]))
            {
                j++;
            }

            if (j < text.Length && j != starts[^1])
            {
                starts.Add(j);
            }

            i = j;
        }

        return [.. starts];
    }
}

/// <summary>SplitMix64 (Steele, Lea, Flood 2014): a fixed, documented mixer so seeded draws never change with the runtime.</summary>
public static class SplitMix64
{
    public static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>A stream of draws: state advances by the golden gamma each call.</summary>
    public sealed class Stream(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [0, n) (modulo bias below 2^-40 for the n used here).</summary>
        public int NextInt(int n) => (int)(Next() % (ulong)n);
    }
}
