using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Workflows.Evaluation.Scoring;

namespace Workflows.Evaluation.Needle;

/// <summary>
/// One cell's result file. The first fields are the paper's (<c>{model}_len_{L}_depth_{D*100}_results.json</c>:
/// model, context_length, depth_percent, version, needle, model_response, score, test_duration_seconds,
/// test_timestamp_utc); the rest are ours. JSON names are snake_case.
/// </summary>
public sealed record NeedleResult
{
    public required string Model { get; init; }

    public required long ContextLength { get; init; }

    public required double DepthPercent { get; init; }

    public int Version { get; init; } = 1;

    /// <summary>The needle text (several needles: joined with no separator, as inserted one after another).</summary>
    public required string Needle { get; init; }

    public required string ModelResponse { get; init; }

    /// <summary>The score of <see cref="Scorer"/> on that scorer's own scale (rouge1: 0–10; others 0–1).</summary>
    public required double Score { get; init; }

    public required string Scorer { get; init; }

    public required double TestDurationSeconds { get; init; }

    public required string TestTimestampUtc { get; init; }

    public int Trial { get; init; }

    public string Task { get; init; } = "paper";

    /// <summary>Every scorer's value, so a report can switch scorer without re-running the model.</summary>
    public IReadOnlyDictionary<string, double> Scores { get; init; } = new Dictionary<string, double>();

    public int PromptTokens { get; init; }

    /// <summary>[start, length] of each needle in the prompt ids.</summary>
    public IReadOnlyList<int[]> NeedleSpans { get; init; } = [];

    public IReadOnlyList<int> InsertionPoints { get; init; } = [];

    public bool FixBosLeak { get; init; }

    /// <summary>The haystack's <see cref="Needle.Haystack.ContentHash"/>: reports name it and compare with the paper only on its haystack.</summary>
    public string Haystack { get; init; } = "";

    /// <summary>Hash of everything that determines the prompt and the generation; a resumed run skips a cell only when it matches.</summary>
    public string ConfigHash { get; init; } = "";

    /// <summary>The score mapped to 0–1 for the heatmap: <see cref="Score"/> / the scorer's scale.</summary>
    [JsonIgnore]
    public double NormalizedScore => Score / NeedleScorers.Scale(ScorerKind);

    [JsonIgnore]
    public NeedleScoreKind ScorerKind => Enum.GetValues<NeedleScoreKind>().First(k => NeedleScorers.Name(k) == Scorer);

    /// <summary>Score of another scorer (from <see cref="Scores"/>) normalised to 0–1.</summary>
    public double NormalizedScoreOf(NeedleScoreKind kind) =>
        Scores.TryGetValue(NeedleScorers.Name(kind), out var s)
            ? s / NeedleScorers.Scale(kind)
            : throw new KeyNotFoundException($"result has no '{NeedleScorers.Name(kind)}' score");
}

/// <summary>Reading and writing result files.</summary>
public static class NeedleResultFiles
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>
    /// The paper's file name: <c>{model_version.replace(".", "_")}_len_{L}_depth_{int(depth*100)}_results.json</c>,
    /// model_version being the part after the last "/"; trials ≥ 1 add <c>_trial_{t}</c> before <c>_results</c>.
    /// </summary>
    public static string FileName(string model, NeedleCell cell)
    {
        var version = model.Contains('/', StringComparison.Ordinal) ? model[(model.LastIndexOf('/') + 1)..] : model;
        var safe = new string(version.Replace('.', '_').Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        var trial = cell.Trial == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $"_trial_{cell.Trial}");
        return string.Create(CultureInfo.InvariantCulture, $"{safe}_len_{cell.ContextLength}_depth_{cell.DepthPercent * 100}{trial}_results.json");
    }

    /// <summary>Writes to a temporary file in the same folder, then renames over the target: a reader never sees half a file.</summary>
    public static void WriteAtomically(string path, NeedleResult result)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(temp, JsonSerializer.Serialize(result, Json));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Reads one result; null when the file is missing or not a complete result.</summary>
    public static NeedleResult? TryRead(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<NeedleResult>(File.ReadAllText(path), Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>One result from its JSON text (read from the store); null when it is not a complete result.</summary>
    public static NeedleResult? Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<NeedleResult>(json, Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Every <c>*_results.json</c> in a folder, in file-name order.</summary>
    public static IReadOnlyList<NeedleResult> ReadDirectory(string directory) =>
        Directory.EnumerateFiles(directory, "*_results.json")
            .Order(StringComparer.Ordinal)
            .Select(TryRead)
            .OfType<NeedleResult>()
            .ToList();
}

/// <summary>Mean and spread of one cell over its trials.</summary>
public sealed record NeedleCellSummary(long ContextLength, int DepthPercent, double Mean, double StandardDeviation, int Trials);

/// <summary>Pivot of results into cells (the paper's <c>pivot_table(..., aggfunc='mean')</c>), with the spread over trials.</summary>
public static class NeedleAggregation
{
    /// <summary>
    /// One summary per (length, depth), scores normalised to 0–1 with <paramref name="scorer"/>. The spread is the
    /// sample standard deviation (n − 1) over trials; 0 with one trial.
    /// </summary>
    public static IReadOnlyList<NeedleCellSummary> ByCell(IEnumerable<NeedleResult> results, NeedleScoreKind scorer) =>
        results
            .GroupBy(r => (r.ContextLength, Depth: (int)Math.Round(r.DepthPercent)))
            .OrderBy(g => g.Key.Depth).ThenBy(g => g.Key.ContextLength)
            .Select(g =>
            {
                var xs = g.Select(r => r.NormalizedScoreOf(scorer)).ToList();
                var mean = xs.Average();
                var sd = xs.Count > 1 ? Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1)) : 0;
                return new NeedleCellSummary(g.Key.ContextLength, g.Key.Depth, mean, sd, xs.Count);
            })
            .ToList();

    /// <summary>visualize.py's "Overall score": the mean over all result files (every trial counts once).</summary>
    public static double OverallMean(IEnumerable<NeedleResult> results, NeedleScoreKind scorer)
    {
        var list = results.ToList();
        return list.Count == 0 ? double.NaN : list.Average(r => r.NormalizedScoreOf(scorer));
    }
}
