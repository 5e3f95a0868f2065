namespace Workflows.DataPrep.Corpus;

/// <summary>The seven SlimPajama sources, named as in <c>meta.redpajama_set_name</c>.</summary>
public enum SlimPajamaSource
{
    CommonCrawl,
    C4,
    Github,
    Book,
    ArXiv,
    Wikipedia,
    StackExchange,
}

public static class SlimPajamaSources
{
    public static readonly IReadOnlyList<SlimPajamaSource> All = Enum.GetValues<SlimPajamaSource>();

    /// <summary>The released code's <c>SLIMPAJAMA_ORIGINAL_MIX</c> (the "natural" mix); sums to 1 within 1e-6.</summary>
    public static readonly IReadOnlyDictionary<SlimPajamaSource, double> NaturalMix = new Dictionary<SlimPajamaSource, double>
    {
        [SlimPajamaSource.CommonCrawl] = 0.53374772,
        [SlimPajamaSource.C4] = 0.26609933,
        [SlimPajamaSource.Github] = 0.05004782,
        [SlimPajamaSource.Book] = 0.0414836,
        [SlimPajamaSource.ArXiv] = 0.04290379,
        [SlimPajamaSource.Wikipedia] = 0.03402128,
        [SlimPajamaSource.StackExchange] = 0.03169647,
    };

    /// <summary>The value SlimPajama stores in <c>meta.redpajama_set_name</c>.</summary>
    public static string SetName(this SlimPajamaSource source) => "RedPajama" + source;

    /// <summary>Maps "RedPajamaArXiv" (SlimPajama) or "arxiv"/"ArXiv" (short form) to a source.</summary>
    public static bool TryParse(string? name, out SlimPajamaSource source)
    {
        source = default;
        if (string.IsNullOrEmpty(name))
        {
            return false;
        }

        var shortName = name.StartsWith("RedPajama", StringComparison.Ordinal) ? name["RedPajama".Length..] : name;
        return Enum.TryParse(shortName, ignoreCase: true, out source) && Enum.IsDefined(source);
    }
}
