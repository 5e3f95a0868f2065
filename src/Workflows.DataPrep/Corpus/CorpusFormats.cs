namespace Workflows.DataPrep.Corpus;

public enum CorpusFormat
{
    Jsonl,
    JsonlGzip,
    JsonlZstd,
    Parquet,
}

public static class CorpusFormats
{
    /// <summary>The format named by a file's extension, or null when it is none we read.</summary>
    public static CorpusFormat? Detect(string path)
    {
        var name = Path.GetFileName(path).ToLowerInvariant();
        if (name.EndsWith(".jsonl.zst", StringComparison.Ordinal) || name.EndsWith(".json.zst", StringComparison.Ordinal))
        {
            return CorpusFormat.JsonlZstd;
        }

        if (name.EndsWith(".jsonl.gz", StringComparison.Ordinal) || name.EndsWith(".json.gz", StringComparison.Ordinal))
        {
            return CorpusFormat.JsonlGzip;
        }

        if (name.EndsWith(".jsonl", StringComparison.Ordinal) || name.EndsWith(".json", StringComparison.Ordinal))
        {
            return CorpusFormat.Jsonl;
        }

        return name.EndsWith(".parquet", StringComparison.Ordinal) ? CorpusFormat.Parquet : null;
    }
}
