using System.Text;
using System.Text.Json;
using ZstdSharp;

namespace Workflows.Testing;

/// <summary>
/// Test text, wherever the tests run. The shared research corpus (<c>shared/corpus</c> beside the clone: SlimPajama-mini,
/// the LLaMA-2 tokenizer and its reference ids, Paul Graham's essays) is not redistributable, so a fresh clone lacks it;
/// <c>samples/</c> ships public-domain SlimPajama-format text. Tests of readers, data prep, selection and training use
/// <see cref="SlimPajamaLines"/>, which comes from the shared corpus when it is there and from the samples otherwise;
/// only tests that need what cannot be shipped use <see cref="CorpusFactAttribute"/>.
/// </summary>
public static class TestCorpus
{
    /// <summary>A path to the shared corpus, or <c>none</c> to run as a fresh clone does (the corpus is otherwise found above the tests).</summary>
    public const string Variable = "WF_SHARED_CORPUS";

    public static readonly string? SharedRoot = FindShared();

    public static readonly string RepositoryRoot = FindAbove("Workflows.sln", directory: false)
                                                   ?? throw new InvalidOperationException("Workflows.sln not found above " + AppContext.BaseDirectory);

    public static string MissingReason =>
        $"needs shared/corpus beside the clone (not redistributable; CI places it there, or set {Variable}): " + AppContext.BaseDirectory;

    public static string Samples => Path.Combine(RepositoryRoot, "samples");

    /// <summary>True when <see cref="SlimPajamaLines"/> comes from the shared corpus's validation chunk.</summary>
    public static bool IsShared => SharedRoot is not null;

    private static readonly Lazy<IReadOnlyList<byte[]>> Lines = new(() => IsShared ? ReadLines(SharedValidation) : FromSamples());
    private static readonly Lazy<string> File = new(() => IsShared ? SharedValidation : WriteSampleFile());

    private static string SharedValidation => Path.Combine(SharedRoot!, "slimpajama-mini", "validation", "example_validation_0.jsonl.zst");

    /// <summary>
    /// SlimPajama-format lines (raw JSONL bytes, no newline): the shared validation chunk (298 documents of the seven
    /// sources), or, without the shared corpus, 298 documents cut from the shipped public-domain texts with the same
    /// number of documents per source and the same rough lengths (web text short, books and code long), labelled with
    /// the seven sources. Deterministic.
    /// </summary>
    public static IReadOnlyList<byte[]> SlimPajamaLines => Lines.Value;

    /// <summary>The same lines as one <c>.jsonl.zst</c> file (the shared file itself, or a copy written once per process).</summary>
    public static string SlimPajamaFile => File.Value;

    public static IReadOnlyList<byte[]> ReadLines(string zstPath)
    {
        using var stream = new DecompressionStream(System.IO.File.OpenRead(zstPath));
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        var all = memory.ToArray();
        var lines = new List<byte[]>();
        var start = 0;
        for (var i = 0; i <= all.Length; i++)
        {
            if (i == all.Length || all[i] == (byte)'\n')
            {
                if (i > start)
                {
                    lines.Add(all[start..i]);
                }

                start = i + 1;
            }
        }

        return lines;
    }

    public static string TextOf(byte[] line)
    {
        using var json = JsonDocument.Parse(line);
        return json.RootElement.GetProperty("text").GetString() ?? "";
    }

    /// <summary>
    /// Per source, after the shared validation chunk: documents, median length in characters (CommonCrawl a little
    /// shorter than measured, since books and C code have fewer characters per token than web text) and the spread
    /// of a log-normal around it (web text mostly short, C4 the shortest; papers, books and code long).
    /// </summary>
    private static readonly (string Source, int Documents, int MedianChars, double Sigma, bool Long)[] Shape =
    [
        ("RedPajamaC4", 100, 1224, 0.56, false), ("RedPajamaCommonCrawl", 84, 1700, 0.76, false), ("RedPajamaStackExchange", 65, 2606, 0.85, false),
        ("RedPajamaWikipedia", 40, 2282, 1.4, false), ("RedPajamaGithub", 6, 3826, 1.8, true), ("RedPajamaArXiv", 2, 358225, 0.8, true),
        ("RedPajamaBook", 1, 158445, 0, true),
    ];

    private static IReadOnlyList<byte[]> FromSamples()
    {
        // One stream of the shipped texts, read cyclically: Gutenberg books, C sources, the held-out books.
        var pool = new StringBuilder();
        foreach (var file in new[] { "sample.jsonl.zst", "heldout.jsonl.zst" })
        {
            foreach (var line in ReadLines(Path.Combine(Samples, "slimpajama-pd", file)))
            {
                pool.Append(TextOf(line)).Append("\n\n");
            }
        }

        var text = pool.ToString();
        var random = new Random(15213);
        // Web text shuffled, with the nine book, code and paper documents spread over the first sixty (as the real
        // chunk has some early), so a prefix of the file is not all short.
        var all = Shape.SelectMany(s => Enumerable.Range(0, s.Documents).Select(_ => s)).ToList();
        var documents = all.Where(d => !d.Long).OrderBy(_ => random.Next()).ToList();
        var longOnes = all.Where(d => d.Long).ToList();
        for (var k = 0; k < longOnes.Count; k++)
        {
            documents.Insert(3 + (6 * k), longOnes[k]);
        }

        var lines = new List<byte[]>();
        var at = 0;
        foreach (var (source, _, median, sigma, _) in documents)
        {
            var normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            var length = Math.Max(80, (int)(median * Math.Exp(sigma * normal)));
            var piece = new StringBuilder();
            while (piece.Length < length)
            {
                var take = Math.Min(length - piece.Length, text.Length - at);
                piece.Append(text, at, take);
                at = (at + take) % text.Length;
            }

            lines.Add(JsonSerializer.SerializeToUtf8Bytes(new { text = piece.ToString(), meta = new { redpajama_set_name = source } }));
        }

        return lines;
    }

    private static string WriteSampleFile()
    {
        var path = Path.Combine(Path.GetTempPath(), $"wf-test-corpus-{Environment.ProcessId}.jsonl.zst");
        using (var file = System.IO.File.Create(path))
        using (var zstd = new CompressionStream(file, 3))
        {
            foreach (var line in SlimPajamaLines)
            {
                zstd.Write(line);
                zstd.WriteByte((byte)'\n');
            }
        }

        return path;
    }

    private static string? FindShared()
    {
        var configured = Environment.GetEnvironmentVariable(Variable);
        if (configured == "none")
        {
            return null;
        }

        return configured is { Length: > 0 } ? (Directory.Exists(configured) ? configured : null) : FindAbove(Path.Combine("shared", "corpus"), directory: true);
    }

    private static string? FindAbove(string relative, bool directory)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, relative);
            if (directory ? Directory.Exists(candidate) : System.IO.File.Exists(candidate))
            {
                return directory ? candidate : dir.FullName;
            }
        }

        return null;
    }
}

/// <summary>
/// A test that needs what only the shared corpus holds (the LLaMA-2 tokenizer and its reference ids, Paul Graham's
/// essays): skipped, with the reason, without it. The one definition, linked into every test project that uses it.
/// </summary>
public sealed class CorpusFactAttribute : FactAttribute
{
    public CorpusFactAttribute()
    {
        if (TestCorpus.SharedRoot is null)
        {
            Skip = TestCorpus.MissingReason;
        }
    }
}

/// <summary>The theory form of <see cref="CorpusFactAttribute"/>: needs the shared corpus, skipped with the reason without it.</summary>
public sealed class CorpusTheoryAttribute : TheoryAttribute
{
    public CorpusTheoryAttribute()
    {
        if (TestCorpus.SharedRoot is null)
        {
            Skip = TestCorpus.MissingReason;
        }
    }
}

/// <summary>
/// A benchmark: measures and prints, never part of the timed suite. Runs only with <c>WF_BENCH=1</c>; with
/// <see cref="NeedsCorpus"/>, also only where the shared corpus is; with <see cref="NeedsFile"/>, only when that
/// environment variable names an existing file. The one definition, linked into every test project that uses it.
/// </summary>
public sealed class BenchmarkFactAttribute : FactAttribute
{
    public const string Variable = "WF_BENCH";

    public bool NeedsCorpus
    {
        get => false;
        set
        {
            if (value && TestCorpus.SharedRoot is null)
            {
                Skip ??= TestCorpus.MissingReason;
            }
        }
    }

    public string? NeedsFile
    {
        get => null;
        set
        {
            if (value is not null && (Environment.GetEnvironmentVariable(value) is not { Length: > 0 } file || !System.IO.File.Exists(file)))
            {
                Skip ??= $"a benchmark: needs ${value} naming its input file";
            }
        }
    }

    public BenchmarkFactAttribute()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1")
        {
            Skip = $"a benchmark: run with {Variable}=1 (not part of the timed suite)";
        }
    }
}
