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
}
