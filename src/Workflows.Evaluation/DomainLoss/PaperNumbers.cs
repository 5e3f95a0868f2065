using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.DomainLoss;

/// <summary>A Table 5 row of the paper (7B LLaMA-2, 5B tokens packed to 80K).</summary>
public enum PaperMixture
{
    Original,
    PerSource,
    Global,
    CodeUp,
    BookUp,
    ArxivUp,
}

/// <summary>
/// Numbers published in Fu et al. 2024 (read from the paper PDF in the authors' repository; see
/// shared/reference/paper-notes.md §4b). Losses are per-token cross-entropy (nats).
/// </summary>
public static class PaperNumbers
{
    public const string Bucket0To4K = "0-4K";
    public const string Bucket4KTo128K = "4K-128K";

    /// <summary>Experiment-name prefixes of Table 5's rows (experiments/*.yaml are named "{prefix}-5b-80k").</summary>
    public static readonly IReadOnlyDictionary<PaperMixture, string> NamePrefix = new Dictionary<PaperMixture, string>
    {
        [PaperMixture.Original] = "original",
        [PaperMixture.PerSource] = "per-source",
        [PaperMixture.Global] = "global",
        [PaperMixture.CodeUp] = "code-up",
        [PaperMixture.BookUp] = "book-up",
        [PaperMixture.ArxivUp] = "arxiv-up",
    };

    public static readonly IReadOnlyDictionary<PaperMixture, string> RowLabel = new Dictionary<PaperMixture, string>
    {
        [PaperMixture.Original] = "Original",
        [PaperMixture.PerSource] = "Per-source",
        [PaperMixture.Global] = "Global",
        [PaperMixture.CodeUp] = "Code↑",
        [PaperMixture.BookUp] = "Book↑",
        [PaperMixture.ArxivUp] = "Arxiv↑",
    };

    // Table 5 column order: C4, CC, Stack, Arxiv, Wiki, Book, Github.
    private static readonly SlimPajamaSource[] Columns =
    [
        SlimPajamaSource.C4, SlimPajamaSource.CommonCrawl, SlimPajamaSource.StackExchange, SlimPajamaSource.ArXiv,
        SlimPajamaSource.Wikipedia, SlimPajamaSource.Book, SlimPajamaSource.Github,
    ];

    private static readonly Dictionary<(string Bucket, PaperMixture Row), double[]> Table5Values = new()
    {
        [(Bucket0To4K, PaperMixture.Original)] = [2.038, 1.760, 1.519, 1.660, 1.424, 2.085, 0.907],
        [(Bucket0To4K, PaperMixture.PerSource)] = [+.002, +.008, -.001, -.008, -.040, -.065, -.008],
        [(Bucket0To4K, PaperMixture.Global)] = [+.008, +.010, +.015, -.020, -.020, -.140, +.015],
        [(Bucket0To4K, PaperMixture.CodeUp)] = [+.010, +.016, +.010, +.006, -.026, +.030, -.023],
        [(Bucket0To4K, PaperMixture.BookUp)] = [+.010, +.016, +.021, +.000, -.010, -.175, +.029],
        [(Bucket0To4K, PaperMixture.ArxivUp)] = [+.006, +.016, +.013, -.060, -.030, +.040, +.025],
        [(Bucket4KTo128K, PaperMixture.Original)] = [1.560, 1.650, 0.786, 1.075, 1.313, 1.852, 0.447],
        [(Bucket4KTo128K, PaperMixture.PerSource)] = [-.010, -.010, -.006, -.011, -.044, -.014, +.002],
        [(Bucket4KTo128K, PaperMixture.Global)] = [-.010, -.006, -.001, -.016, -.040, -.018, -.007],
        [(Bucket4KTo128K, PaperMixture.CodeUp)] = [-.008, -.002, -.003, -.007, -.042, -.010, -.029],
        // The PDF prints "−0.30" for Book; the other entries and the figure suggest −0.030 (a typo). We use −0.030.
        [(Bucket4KTo128K, PaperMixture.BookUp)] = [-.010, -.006, +.001, -.007, -.037, -.030, +.000],
        [(Bucket4KTo128K, PaperMixture.ArxivUp)] = [-.008, -.002, +.002, -.036, -.039, -.010, -.004],
    };

    /// <summary>Footnote for the one corrected value.</summary>
    public const string Table5Footnote = "Paper Table 5 prints “−0.30” for Book↑ / Book / 4K–128K; read as −0.030 (typo).";

    /// <summary>Table 5: the Original row's absolute loss, or another row's Δ vs Original; null where the paper has no number.</summary>
    public static double? Table5(string bucket, PaperMixture row, SlimPajamaSource source)
    {
        var column = Array.IndexOf(Columns, source);
        return Table5Values.TryGetValue((bucket, row), out var values) && column >= 0 ? values[column] : null;
    }

    /// <summary>
    /// The Table 5 row an experiment corresponds to: its name starts with the row's prefix and a '-' (e.g.
    /// "per-source-5b-80k" → Per-source). <paramref name="exact"/> is true only for "{prefix}-5b-80k", the paper's setting.
    /// </summary>
    public static PaperMixture? MatchExperiment(string experiment, out bool exact)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        foreach (var (row, prefix) in NamePrefix)
        {
            if (experiment.StartsWith(prefix + "-", StringComparison.Ordinal))
            {
                exact = experiment == prefix + "-5b-80k";
                return row;
            }
        }

        exact = false;
        return null;
    }

    /// <summary>Fig. 3 / Fig. 4 loss lengths (tokens; "1K" … "128K" read as binary sizes).</summary>
    public static readonly IReadOnlyList<long> LossLengths = [1024, 16384, 32768, 65536, 131072];

    /// <summary>
    /// Fig. 3 (per-source data, 7B at 80K, by training tokens): Loss@1K/16K/32K/64K/128K and NIAH accuracy (%).
    /// Values read off the figure's text (paper-notes §4b).
    /// </summary>
    public static readonly IReadOnlyDictionary<long, (double[] Loss, double NeedleAccuracy)> Figure3 = new Dictionary<long, (double[], double)>
    {
        [100_000_000] = ([1.87, 1.65, 1.50, 1.45, 1.61], 37.8),
        [300_000_000] = ([1.82, 1.57, 1.45, 1.35, 1.44], 59.0),
        [500_000_000] = ([1.81, 1.59, 1.43, 1.34, 1.34], 81.1),
        [1_000_000_000] = ([1.81, 1.57, 1.42, 1.34, 1.38], 85.3),
        [5_000_000_000] = ([1.80, 1.56, 1.41, 1.32, 1.36], 88.0),
        [10_000_000_000] = ([1.79, 1.55, 1.40, 1.31, 1.35], 84.0),
    };

    /// <summary>Fig. 4: the original mixture at 5B/80K, Loss@1K/16K/32K/64K/128K (no needle accuracy is printed).</summary>
    public static readonly double[] Figure4Original = [1.80, 1.56, 1.42, 1.33, 1.37];

    /// <summary>Table 3: needle score of the paper's models (7B 80K: 88.0; 13B 64K: 90.0).</summary>
    public static readonly IReadOnlyDictionary<string, double> Table3Needle = new Dictionary<string, double>
    {
        ["llama-2-7b per-source 5B 80K"] = 88.0,
        ["llama-2-13b per-source 5B 64K"] = 90.0,
    };
}
