namespace Workflows.DataPrep.Pipeline;

public enum DataPrepPhase
{
    Measure,
    Plan,
    Write,
    Publish,
    Done,
}

/// <summary>A snapshot for progress bars: totals so far in the current phase.</summary>
public sealed record DataPrepProgress(
    DataPrepPhase Phase,
    long Documents,
    long Tokens,
    long InputBytes,
    int FilesDone,
    int FilesTotal,
    int ShardsDone,
    int ShardsTotal);
