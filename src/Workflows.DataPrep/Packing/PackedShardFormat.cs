using Parquet.Schema;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Packing;

/// <summary>A contiguous run of one source inside a packed sequence: tokens [Start, End).</summary>
public readonly record struct SourceSpan(string Source, int Start, int End);

/// <summary>One training sequence: exactly the context length of token ids, and where each source's text sits in it.</summary>
public sealed record PackedSequence(long Index, int[] Tokens, IReadOnlyList<SourceSpan> Spans);

/// <summary>
/// The Parquet schema of packed shards. Tokens are one binary value per row (context × int32, little-endian):
/// a row decodes with one memory copy, where a list&lt;int32&gt; column would decode 80K repetition levels.
/// Spans are three parallel list&lt;int32&gt; columns (source id, start, end), readable by any Parquet tool; source
/// names are in the key-value metadata <c>wf.sources</c>.
/// </summary>
public static class PackedShardFormat
{
    public const string FormatName = "wf.packed-sequences/1";

    public static readonly DataField Tokens = new("tokens", typeof(byte[]), isNullable: false);
    /// <summary>Source id per span: the index of its name in the <see cref="Keys.Sources"/> metadata (SlimPajama's seven, in enum order).</summary>
    public static readonly DataField SpanSource = new("span_source", typeof(int), isNullable: false, isArray: true);
    public static readonly DataField SpanStart = new("span_start", typeof(int), isNullable: false, isArray: true);
    public static readonly DataField SpanEnd = new("span_end", typeof(int), isNullable: false, isArray: true);

    public static readonly ParquetSchema Schema = new(Tokens, SpanSource, SpanStart, SpanEnd);

    /// <summary>Keys of the shard-level key-value metadata.</summary>
    public static class Keys
    {
        public const string Format = "wf.format";
        public const string PlanId = "wf.plan_id";
        public const string Shard = "wf.shard";
        public const string ShardCount = "wf.shard_count";
        public const string FirstSequence = "wf.first_sequence";
        public const string Sequences = "wf.sequences";
        public const string ContextLength = "wf.context_length";
        public const string Tokenizer = "wf.tokenizer";
        public const string BosId = "wf.bos_id";
        public const string SeparatorId = "wf.separator_id";
        public const string TokenEncoding = "wf.token_encoding";
        public const string Sources = "wf.sources";
    }
}
