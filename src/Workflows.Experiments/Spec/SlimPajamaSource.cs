namespace Workflows.Experiments.Spec;

/// <summary>The seven SlimPajama sources; YAML uses these names (SlimPajama stores them prefixed by "RedPajama").</summary>
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

public static class SlimPajama
{
    public static readonly IReadOnlyList<SlimPajamaSource> Sources = Enum.GetValues<SlimPajamaSource>();

    /// <summary>
    /// The "natural" mix: <c>SLIMPAJAMA_ORIGINAL_MIX</c> of the paper's released code (token shares of SlimPajama).
    /// The paper's prose quotes LLaMA-1's proportions instead; the code's numbers are the ones its data used.
    /// </summary>
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

    /// <summary>Median document length per source in tokens (<c>MEDIUM_LENGTH</c> of the released code).</summary>
    public static readonly IReadOnlyDictionary<SlimPajamaSource, int> MedianLength = new Dictionary<SlimPajamaSource, int>
    {
        [SlimPajamaSource.CommonCrawl] = 1066,
        [SlimPajamaSource.C4] = 315,
        [SlimPajamaSource.Github] = 520,
        [SlimPajamaSource.Book] = 121602,
        [SlimPajamaSource.ArXiv] = 14565,
        [SlimPajamaSource.Wikipedia] = 409,
        [SlimPajamaSource.StackExchange] = 507,
    };

    public static string SetName(this SlimPajamaSource source) => "RedPajama" + source;

    /// <summary>Maps SlimPajama's "RedPajamaArXiv" or the short "ArXiv" (any case) to a source.</summary>
    public static bool TryParse(string? name, out SlimPajamaSource source)
    {
        source = default;
        if (string.IsNullOrEmpty(name))
        {
            return false;
        }

        var shortName = name.StartsWith("RedPajama", StringComparison.Ordinal) ? name["RedPajama".Length..] : name;
        return !char.IsAsciiDigit(shortName.FirstOrDefault()) && !shortName.StartsWith('-')
            && Enum.TryParse(shortName, ignoreCase: true, out source) && Enum.IsDefined(source);
    }
}
