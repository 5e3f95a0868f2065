using Workflows.Experiments.Validation;

namespace Workflows.DataPrep.Corpus;

/// <summary>Why an input record (or a whole input) could not be read.</summary>
public enum BadRecordReason
{
    CorruptCompression,
    TruncatedCompression,
    InvalidUtf8,
    NotJson,
    MissingText,
    MissingSource,
    UnknownSource,
    EmptyInput,
    UnreadableParquet,

    /// <summary>Over a <see cref="ReadLimits"/> limit (document size, decompressed size, compression ratio): never skipped.</summary>
    TooLarge,
}

/// <summary>Where a bad record is and why it is bad.</summary>
/// <param name="File">Input file key.</param>
/// <param name="Line">1-based line (or Parquet row); 0 when the problem is not one line (e.g. an empty file).</param>
/// <param name="ByteOffset">Byte offset of the problem in the decompressed stream; for compression errors, in the compressed file; -1 when unknown.</param>
public sealed record BadRecord(string File, long Line, long ByteOffset, BadRecordReason Reason, string Detail)
{
    /// <summary>Escaped and cut: the file name and the detail can quote input bytes.</summary>
    public override string ToString()
    {
        var where = Line > 0 ? $"line {Line}" : "whole file";
        var at = ByteOffset >= 0 ? $", byte {ByteOffset}" : string.Empty;
        return $"{Untrusted.Escape(File, 240)}: {where}{at}: {Reason}: {Untrusted.Escape(Detail, 300)}";
    }
}

/// <summary>Thrown when input cannot be read and <see cref="CorpusReaderOptions.SkipBadRecords"/> is off.</summary>
public sealed class CorpusFormatException : Exception
{
    public CorpusFormatException(BadRecord record, Exception? inner = null)
        : base(record.ToString(), inner)
    {
        Record = record;
    }

    /// <summary>With a message of its own (a limit: "document at FILE:LINE exceeds 64 MiB ...").</summary>
    public CorpusFormatException(BadRecord record, string message)
        : base(message)
    {
        Record = record;
    }

    public CorpusFormatException()
        : this(new BadRecord("?", 0, -1, BadRecordReason.NotJson, "unknown"))
    {
    }

    public CorpusFormatException(string message)
        : base(message)
    {
        Record = new BadRecord("?", 0, -1, BadRecordReason.NotJson, message);
    }

    public CorpusFormatException(string message, Exception inner)
        : base(message, inner)
    {
        Record = new BadRecord("?", 0, -1, BadRecordReason.NotJson, message);
    }

    public BadRecord Record { get; }
}

/// <summary>Counts of skipped records per reason, with the first few locations, for one input file.</summary>
public sealed record BadRecordSummary(long Skipped, IReadOnlyDictionary<BadRecordReason, long> ByReason, IReadOnlyList<BadRecord> Examples)
{
    public static readonly BadRecordSummary None = new(0, new Dictionary<BadRecordReason, long>(), []);
}

/// <summary>Collects bad records while a file is read: throws on the first, or counts them.</summary>
public sealed class BadRecordLog(bool skip)
{
    private const int MaxExamples = 10;
    private readonly Dictionary<BadRecordReason, long> byReason = [];
    private readonly List<BadRecord> examples = [];

    public long Skipped { get; private set; }

    /// <summary>Throws <see cref="CorpusFormatException"/> unless skipping; otherwise records it.</summary>
    public void Report(BadRecord record, Exception? inner = null)
    {
        if (!skip)
        {
            throw new CorpusFormatException(record, inner);
        }

        Skipped++;
        byReason[record.Reason] = byReason.GetValueOrDefault(record.Reason) + 1;
        if (examples.Count < MaxExamples)
        {
            examples.Add(record);
        }
    }

    public BadRecordSummary ToSummary() =>
        Skipped == 0 ? BadRecordSummary.None : new BadRecordSummary(Skipped, new Dictionary<BadRecordReason, long>(byReason), [.. examples]);
}
