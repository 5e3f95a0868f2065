using Workflows.DataPrep.Selection;

namespace Workflows.DataPrep.Pipeline;

public sealed record ManifestShard(string File, string Sha256, long Bytes, long Rows, long Tokens, long FirstSequence);

public sealed record ManifestInput(string Key, string Sha256, long Bytes, long Documents, long Tokens, long SkippedRecords);

/// <summary>
/// The published result of a run. Written last and atomically: a manifest that exists names complete shards
/// (by SHA-256); a run that failed has none. Holds no time, host or thread count, so equal runs write equal bytes.
/// </summary>
public sealed record DataPrepManifest(
    string Format,
    string PlanId,
    string Tokenizer,
    int? BosId,
    int? SeparatorId,
    int ContextLength,
    long Sequences,
    long Tokens,
    long DroppedTailTokens,
    int ShardCount,
    IReadOnlyList<ManifestShard> Shards,
    IReadOnlyList<ManifestInput> Inputs,
    string Statistics,
    string StatisticsSha256,
    DataPrepOptions Options)
{
    public const string FormatName = "wf.dataprep-manifest/1";
    public const string FileName = "manifest.json";
}
