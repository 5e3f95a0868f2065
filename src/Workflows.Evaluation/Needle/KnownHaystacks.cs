namespace Workflows.Evaluation.Needle;

/// <summary>What a haystack is, as far as comparing with the paper goes.</summary>
/// <param name="Sha256">The haystack's <see cref="Haystack.ContentHash"/>.</param>
/// <param name="Name">A name for reports.</param>
/// <param name="IsPaperHaystack">The paper's needle numbers (Fig. 1, Table 3, Fig. 3) were measured on this text.</param>
public sealed record HaystackIdentity(string Sha256, string Name, bool IsPaperHaystack)
{
    /// <summary>The first 12 hex digits, as reports show them.</summary>
    public string ShortHash => Sha256.Length == 64 ? Sha256[..12] : Sha256;
}

/// <summary>
/// Recognises haystacks by <see cref="Haystack.ContentHash"/> (SHA-256 over the sorted file names and their texts as
/// Python's text mode reads them). wf cannot ship the paper's haystack (Paul Graham's essays are copyrighted), so a
/// report compares its needle score with the paper's only when the hash says the run used that text; only the hash is
/// recorded here, never the text.
/// </summary>
public static class KnownHaystacks
{
    /// <summary>
    /// <c>eval/needle/PaulGrahamEssays/*.txt</c> (49 files) of FranxYao/Long-Context-Data-Engineering at 2b38d52, the
    /// paper's code. The copy in gkamradt/LLMTest_NeedleInAHaystack at 7b90d28 (the needle test the paper adapted)
    /// hashes the same: its only difference, <c>worked.txt</c>, is LF instead of CRLF line ends, which Python's text
    /// mode (and <see cref="Haystack.LoadDirectory"/>) reads identically.
    /// </summary>
    public const string PaulGrahamEssaysSha256 = "f3ff48e417bd7da9b55112f4ccb4a97b112383dc76450174361ec42762a93ff3";

    /// <summary>The public-domain sample shipped in <c>samples/haystack</c> (4 texts from Project Gutenberg).</summary>
    public const string PublicDomainSampleSha256 = "20c4de278be2f785cd0e3b8876aa0231482329792ae25edb2c246220b944bc1d";

    public static HaystackIdentity Identify(string sha256) => sha256 switch
    {
        PaulGrahamEssaysSha256 => new(sha256, "Paul Graham's essays (the paper's haystack)", true),
        PublicDomainSampleSha256 => new(sha256, "wf's public-domain sample (samples/haystack), not the paper's haystack", false),
        "" => new(sha256, "not recorded (results written before wf recorded the haystack)", false),
        _ => new(sha256, "a custom haystack, not the paper's", false),
    };
}
