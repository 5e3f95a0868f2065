using System.Text.Json;
using System.Text.Json.Serialization;
using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>
/// Measured length distributions of a corpus, per source: how many documents, tokens and characters it holds at each
/// (token length, character length). Measured once per file (<c>wf corpus upload</c>, <c>wf corpus stats</c>; cached by
/// the file's SHA-256), summed per corpus, and read by the planner, which evaluates any long threshold, length measure
/// and selection rule against them. Small enough to commit beside the experiments (<c>corpora/NAME.stats.json</c>).
/// </summary>
public sealed record CorpusStatistics(
    string Format,
    string Name,
    string Tokenizer,
    IReadOnlyList<CorpusStatisticsFile> Files,
    IReadOnlyDictionary<SlimPajamaSource, SourceLengths> Sources)
{
    public const string FormatName = "wf-corpus-stats/1";

    /// <summary>Bins per octave of length: cell edges at 2^(k/16), i.e. 4.4% wide; powers of two (4K, Fig. 2's buckets) are edges.</summary>
    public const int BinsPerOctave = 16;

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(), new LengthCellConverter() },
    };

    public long Documents => Sources.Values.Sum(s => s.Documents);

    public long Tokens => Sources.Values.Sum(s => s.Tokens);

    /// <summary>The bin of a positive length: floor(16·log2(length)), exact at powers of two.</summary>
    public static int Bin(long length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        var octave = 63 - (int)long.LeadingZeroCount(length);
        var lower = 1L << octave;
        // Within the octave, find k with 2^(octave + k/16) <= length < 2^(octave + (k+1)/16) without rounding at the edges.
        var k = (int)Math.Floor(BinsPerOctave * Math.Log2((double)length / lower));
        while (k > 0 && BinStart(octave * BinsPerOctave + k) > length)
        {
            k--;
        }

        while (k < BinsPerOctave - 1 && BinStart(octave * BinsPerOctave + k + 1) <= length)
        {
            k++;
        }

        return (octave * BinsPerOctave) + k;
    }

    /// <summary>Lower edge of a bin as a real length.</summary>
    public static double BinStart(int bin) => Math.Pow(2, (double)bin / BinsPerOctave);

    /// <summary>Share of a bin's documents at or above <paramref name="threshold"/>, assuming lengths spread log-uniformly inside the bin.</summary>
    public static double ShareAtOrAbove(int bin, double threshold)
    {
        var lo = BinStart(bin);
        var hi = BinStart(bin + 1);
        if (threshold <= lo)
        {
            return 1;
        }

        return threshold >= hi ? 0 : Math.Log2(hi / threshold) * BinsPerOctave;
    }

    /// <summary>Sums statistics of disjoint files (same tokenizer) into one corpus.</summary>
    public static CorpusStatistics Merge(string name, IReadOnlyList<CorpusStatistics> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0)
        {
            throw new ArgumentException("nothing to merge", nameof(parts));
        }

        var tokenizers = parts.Select(p => p.Tokenizer).Distinct(StringComparer.Ordinal).ToList();
        if (tokenizers.Count > 1)
        {
            throw new ArgumentException($"statistics measured with different tokenizers ({string.Join(", ", tokenizers)}) cannot be summed", nameof(parts));
        }

        var sources = new Dictionary<SlimPajamaSource, SourceLengths>();
        foreach (var source in SlimPajama.Sources)
        {
            var cells = new Dictionary<(int, int), LengthCell>();
            foreach (var part in parts)
            {
                if (!part.Sources.TryGetValue(source, out var lengths))
                {
                    continue;
                }

                foreach (var c in lengths.Cells)
                {
                    cells[(c.TokenBin, c.CharBin)] = cells.TryGetValue((c.TokenBin, c.CharBin), out var had) ? had.Plus(c) : c;
                }
            }

            if (cells.Count > 0)
            {
                sources[source] = SourceLengths.From(cells.Values);
            }
        }

        return new CorpusStatistics(FormatName, name, tokenizers[0],
            [.. parts.SelectMany(p => p.Files).OrderBy(f => f.Key, StringComparer.Ordinal)], sources);
    }

    public static CorpusStatistics Read(string path)
    {
        try
        {
            var stats = JsonSerializer.Deserialize<CorpusStatistics>(File.ReadAllText(path), Json)
                ?? throw new FormatException($"{path}: empty corpus statistics");
            return stats.Format == FormatName ? stats : throw new FormatException($"{path}: format '{stats.Format}', expected '{FormatName}'");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not a corpus-statistics file ({e.Message})", e);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>One measured file: its key (as data prep names it), SHA-256 and totals.</summary>
public sealed record CorpusStatisticsFile(string Key, string Sha256, long Documents, long Tokens, long Chars);

/// <summary>One source's documents by (token bin, character bin).</summary>
public sealed record SourceLengths(long Documents, long Tokens, long Chars, IReadOnlyList<LengthCell> Cells)
{
    public static SourceLengths From(IEnumerable<LengthCell> cells)
    {
        var sorted = cells.OrderBy(c => c.TokenBin).ThenBy(c => c.CharBin).ToList();
        return new SourceLengths(sorted.Sum(c => c.Documents), sorted.Sum(c => c.Tokens), sorted.Sum(c => c.Chars), sorted);
    }
}

/// <summary>
/// Documents whose token length falls in <see cref="TokenBin"/> and character length in <see cref="CharBin"/>, with
/// their total tokens, characters and sum of squared token lengths (for the sampling spread of a selection).
/// </summary>
public sealed record LengthCell(int TokenBin, int CharBin, long Documents, long Tokens, long Chars, double TokensSquared)
{
    public LengthCell Plus(LengthCell other) =>
        this with { Documents = Documents + other.Documents, Tokens = Tokens + other.Tokens, Chars = Chars + other.Chars, TokensSquared = TokensSquared + other.TokensSquared };
}

/// <summary>Cells as JSON arrays [token_bin, char_bin, documents, tokens, chars, tokens_squared]: a corpus has thousands.</summary>
internal sealed class LengthCellConverter : JsonConverter<LengthCell>
{
    public override LengthCell Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("a length cell is an array [token_bin, char_bin, documents, tokens, chars, tokens_squared]");
        }

        var values = new double[6];
        for (var i = 0; i < 6; i++)
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.Number)
            {
                throw new JsonException("a length cell has six numbers");
            }

            values[i] = reader.GetDouble();
        }

        if (!reader.Read() || reader.TokenType != JsonTokenType.EndArray)
        {
            throw new JsonException("a length cell has six numbers");
        }

        return new LengthCell((int)values[0], (int)values[1], (long)values[2], (long)values[3], (long)values[4], values[5]);
    }

    public override void Write(Utf8JsonWriter writer, LengthCell value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        writer.WriteNumberValue(value.TokenBin);
        writer.WriteNumberValue(value.CharBin);
        writer.WriteNumberValue(value.Documents);
        writer.WriteNumberValue(value.Tokens);
        writer.WriteNumberValue(value.Chars);
        writer.WriteNumberValue(value.TokensSquared);
        writer.WriteEndArray();
    }
}

/// <summary>
/// Where an experiments repository keeps measured statistics: <c>corpora/NAME.stats.json</c> (written by
/// <c>wf corpus upload NAME</c>, or <c>wf corpus stats --name NAME --out …</c>), committed so that the PR's plan uses them.
/// </summary>
public static class CorpusStatisticsFiles
{
    public const string Folder = "corpora";

    public static string FileName(string corpus) => $"{corpus}.stats.json";

    /// <summary>
    /// <c>corpora/&lt;data.corpus&gt;.stats.json</c> in the experiment file's folder or the nearest folder above that has
    /// one, for an experiment that reads a registered corpus (no data.paths); null when there is none.
    /// </summary>
    public static string? Find(ExperimentSpec spec, string experimentPath)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Data.Paths is { Count: > 0 })
        {
            return null;
        }

        for (var dir = Path.GetDirectoryName(Path.GetFullPath(experimentPath)); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            var candidate = Path.Combine(dir, Folder, FileName(spec.Data.Corpus));
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
