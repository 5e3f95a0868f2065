using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Corpus;

/// <summary>How input records are read. None of this changes which documents a plan selects, except through what is read.</summary>
public sealed record CorpusReaderOptions
{
    /// <summary>JSON property holding the text (dotted path for nested objects).</summary>
    public string TextField { get; init; } = "text";

    /// <summary>JSON property holding the source name; SlimPajama's is <c>meta.redpajama_set_name</c>.</summary>
    public string SourceField { get; init; } = "meta.redpajama_set_name";

    /// <summary>Parquet column holding the text.</summary>
    public string ParquetTextColumn { get; init; } = "text";

    /// <summary>Parquet column holding the source name (a top-level column, or a dotted path into a struct).</summary>
    public string ParquetSourceColumn { get; init; } = "redpajama_set_name";

    /// <summary>
    /// When false (the default) the first bad record stops the run with a <see cref="CorpusFormatException"/>.
    /// When true, bad records are counted (per reason, with the first few locations) and skipped.
    /// </summary>
    public bool SkipBadRecords { get; init; }

    /// <summary>
    /// Size limits per input (not part of <see cref="CorpusMeasurer.ReaderFingerprint"/>: they only ever refuse a file,
    /// never change what is read from one that passes).
    /// </summary>
    public ReadLimits Limits { get; init; } = ReadLimits.Default;
}

/// <summary>
/// What one input may cost before it is refused as hostile (a compression bomb, one 4 GiB line): the defaults serve
/// SlimPajama with a wide margin (its longest documents, whole books, are a few MB; a chunk file decompresses to about
/// 50 MB at a ratio near 4). Exceeding one stops the file with "document at FILE:LINE exceeds N MiB" and the like,
/// whatever <see cref="CorpusReaderOptions.SkipBadRecords"/> says: a reader cannot skip past a line it cannot hold.
/// Raise them with WF_MAX_DOCUMENT_MIB, WF_MAX_INPUT_GIB and WF_MAX_COMPRESSION_RATIO.
/// </summary>
/// <param name="MaxDocumentBytes">One JSONL line (or Parquet text value), in bytes.</param>
/// <param name="MaxDecompressedBytes">A whole input after decompression, in bytes.</param>
/// <param name="MaxCompressionRatio">Decompressed ÷ compressed bytes, checked once 16 MiB are out (text: 3 to 10).</param>
public sealed record ReadLimits(long MaxDocumentBytes, long MaxDecompressedBytes, double MaxCompressionRatio)
{
    public const string DocumentVariable = "WF_MAX_DOCUMENT_MIB";
    public const string InputVariable = "WF_MAX_INPUT_GIB";
    public const string RatioVariable = "WF_MAX_COMPRESSION_RATIO";

    /// <summary>Below this much output the ratio is not judged (a small file's header skews it).</summary>
    public const long RatioCheckAfterBytes = 16L << 20;

    public static ReadLimits Builtin { get; } = new(64L << 20, 64L << 30, 1000);

    /// <summary><see cref="Builtin"/> with the environment's overrides, read once per process.</summary>
    public static ReadLimits Default { get; } = FromEnvironment(Environment.GetEnvironmentVariable);

    public static ReadLimits FromEnvironment(Func<string, string?> env)
    {
        static double? Number(string? text) =>
            double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && v > 0 ? v : null;

        return new ReadLimits(
            Number(env(DocumentVariable)) is { } mib ? (long)(mib * (1 << 20)) : Builtin.MaxDocumentBytes,
            Number(env(InputVariable)) is { } gib ? (long)(gib * (1L << 30)) : Builtin.MaxDecompressedBytes,
            Number(env(RatioVariable)) ?? Builtin.MaxCompressionRatio);
    }

    /// <summary>A limit as the messages show it: "64 MiB", or "1,024 bytes" below a MiB.</summary>
    public static string Size(long bytes) => bytes >= 1 << 20
        ? (bytes / (double)(1 << 20)).ToString("0.##", System.Globalization.CultureInfo.InvariantCulture) + " MiB"
        : bytes.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " bytes";
}
