using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>
/// The paper's Fig. 2 (Fu et al. 2024), read off the figure (the paper prints no table; values to about ±0.005): left,
/// the share of data in each length bucket per variant; right, each source's share of the data per variant. The
/// planner shows them beside its own forecast when an experiment plans on SlimPajama.
/// </summary>
public static class PaperFigure2
{
    /// <summary>Fig. 2's length buckets (K = 1,024 tokens); wf adds "&gt;128K", which the figure does not show.</summary>
    public static readonly IReadOnlyList<string> Buckets = ["0-1K", "1-2K", "2-4K", "4-8K", "8-16K", "16-32K", "32-64K", "64-128K"];

    /// <summary>Lower bucket edges in tokens: 0, 1K, 2K, … 64K, and 128K for the bucket the figure leaves out.</summary>
    public static readonly IReadOnlyList<long> BucketStarts = [0, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];

    public static readonly IReadOnlyDictionary<string, double[]> LengthShares = new Dictionary<string, double[]>
    {
        ["Original"] = [.255, .197, .158, .115, .098, .070, .036, .028],
        ["Cut at 4K"] = [.42, .31, .27, 0, 0, 0, 0, 0],
        ["Per-source"] = [.095, .062, .077, .272, .226, .142, .074, .056],
        ["Global"] = [.06, .048, .065, .25, .231, .165, .097, .087],
        ["Upsample ArXiv"] = [.045, .03, .039, .16, .24, .268, .158, .067],
        ["Upsample Book"] = [.057, .037, .046, .163, .14, .112, .142, .305],
        ["Upsample GitHub"] = [.06, .043, .057, .25, .24, .167, .106, .078],
    };

    public static readonly IReadOnlyDictionary<string, IReadOnlyDictionary<SlimPajamaSource, double>> SourceShares =
        new Dictionary<string, IReadOnlyDictionary<SlimPajamaSource, double>>
        {
            ["Original"] = Shares(.266, .534, .032, .034, .050, .043, .042),
            ["Cut at 4K"] = Shares(.266, .534, .032, .034, .050, .043, .042),
            ["Per-source"] = Shares(.246, .522, .037, .040, .060, .052, .042),
            ["Global"] = Shares(.132, .586, .011, .022, .062, .095, .092),
            ["Upsample ArXiv"] = Shares(.112, .239, .017, .018, .027, .566, .019),
            ["Upsample Book"] = Shares(.125, .264, .019, .021, .030, .027, .515),
            ["Upsample GitHub"] = Shares(.115, .244, .017, .018, .559, .025, .019),
        };

    /// <summary>The Fig. 2 variant an experiment's selection corresponds to, or null (e.g. several boosted sources).</summary>
    public static string? VariantOf(ExperimentSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var up = spec.Data.Upsampling;
        return up.Mode switch
        {
            UpsamplingMode.None => "Original",
            UpsamplingMode.Cut => "Cut at 4K",
            UpsamplingMode.Global => "Global",
            UpsamplingMode.PerSource => "Per-source",
            UpsamplingMode.Upsample when up.Sources is [var one] => one switch
            {
                SlimPajamaSource.ArXiv => "Upsample ArXiv",
                SlimPajamaSource.Book => "Upsample Book",
                SlimPajamaSource.Github => "Upsample GitHub",
                _ => null,
            },
            _ => null,
        };
    }

    /// <summary>Fig. 2's bucket of a token length (8 = beyond 128K).</summary>
    public static int BucketOf(double tokens)
    {
        var b = 0;
        while (b + 1 < BucketStarts.Count && tokens >= BucketStarts[b + 1])
        {
            b++;
        }

        return b;
    }

    private static Dictionary<SlimPajamaSource, double> Shares(double c4, double cc, double stack, double wiki, double github, double arxiv, double book) => new()
    {
        [SlimPajamaSource.C4] = c4,
        [SlimPajamaSource.CommonCrawl] = cc,
        [SlimPajamaSource.StackExchange] = stack,
        [SlimPajamaSource.Wikipedia] = wiki,
        [SlimPajamaSource.Github] = github,
        [SlimPajamaSource.ArXiv] = arxiv,
        [SlimPajamaSource.Book] = book,
    };
}
