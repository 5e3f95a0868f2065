using System.Globalization;
using System.Text;
using Workflows.Evaluation.Needle;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Scoring;

/// <summary>How a needle response is scored. The first three are the spec's <see cref="NeedleScorer"/>.</summary>
public enum NeedleScoreKind
{
    /// <summary>visualize.py's word recall, quirks kept (max 11/12 on the paper's needle). Range 0–1.</summary>
    WordRecall,

    /// <summary>The stored score: rouge_score ROUGE-1 F-measure × 10 with the Porter stemmer. Range 0–10.</summary>
    Rouge1,

    /// <summary>Word recall with a unique-word denominator and punctuation stripped. Range 0–1.</summary>
    WordRecallFixed,

    /// <summary>RULER's string_match_all: share of expected values found (case-insensitive substring). Range 0–1.</summary>
    StringMatchAll,
}

/// <summary>The scorers. Every one is a pure function of (response, task).</summary>
public static class NeedleScorers
{
    public static NeedleScoreKind FromSpec(NeedleScorer scorer) => scorer switch
    {
        NeedleScorer.WordRecall => NeedleScoreKind.WordRecall,
        NeedleScorer.Rouge1 => NeedleScoreKind.Rouge1,
        NeedleScorer.WordRecallFixed => NeedleScoreKind.WordRecallFixed,
        _ => throw new ArgumentOutOfRangeException(nameof(scorer), scorer, null),
    };

    /// <summary>Kebab-case name written to results ("word-recall", "rouge1", "word-recall-fixed", "string-match-all").</summary>
    public static string Name(NeedleScoreKind kind) => kind switch
    {
        NeedleScoreKind.WordRecall => "word-recall",
        NeedleScoreKind.Rouge1 => "rouge1",
        NeedleScoreKind.WordRecallFixed => "word-recall-fixed",
        NeedleScoreKind.StringMatchAll => "string-match-all",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>The largest value a scorer gives (to map onto the heatmap's 0–1).</summary>
    public static double Scale(NeedleScoreKind kind) => kind == NeedleScoreKind.Rouge1 ? 10.0 : 1.0;

    public static double Score(NeedleScoreKind kind, string response, NeedleTask task)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(task);
        return kind switch
        {
            NeedleScoreKind.WordRecall => WordRecall(response, task.ExpectedAnswer),
            NeedleScoreKind.Rouge1 => Rouge1F(task.Reference, response) * 10,
            NeedleScoreKind.WordRecallFixed => WordRecallFixed(response, task.ExpectedAnswer),
            NeedleScoreKind.StringMatchAll => StringMatchAll(response, task.ExpectedValues),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }

    /// <summary>All scorers at once (results keep every score so the heatmap scorer can change without a rerun).</summary>
    public static IReadOnlyDictionary<string, double> All(string response, NeedleTask task)
    {
        var scores = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var kind in Enum.GetValues<NeedleScoreKind>())
        {
            if (kind == NeedleScoreKind.StringMatchAll && task.ExpectedValues.Count == 0)
            {
                continue;
            }

            scores[Name(kind)] = Score(kind, response, task);
        }

        return scores;
    }

    /// <summary>
    /// visualize.py: <c>len(set(response.lower().split()) &amp; set(expected.lower().split())) / len(expected.lower().split())</c>.
    /// The denominator counts repeated words ("a" twice in the paper's answer: max 11/12) and words keep their
    /// punctuation ("day." matches only "day.").
    /// </summary>
    public static double WordRecall(string response, string expected)
    {
        var expectedWords = PythonSplit(PythonLower(expected));
        if (expectedWords.Count == 0)
        {
            throw new ArgumentException("the expected answer has no words", nameof(expected));
        }

        var responseSet = new HashSet<string>(PythonSplit(PythonLower(response)), StringComparer.Ordinal);
        var overlap = new HashSet<string>(expectedWords, StringComparer.Ordinal);
        overlap.IntersectWith(responseSet);
        return (double)overlap.Count / expectedWords.Count;
    }

    /// <summary>
    /// The corrected recall: words = lower-case letter/digit runs (every other character separates words), unique
    /// expected words as denominator, so a perfect answer scores 1 and "day" matches "day.".
    /// </summary>
    public static double WordRecallFixed(string response, string expected)
    {
        var expectedSet = new HashSet<string>(LetterDigitWords(expected), StringComparer.Ordinal);
        if (expectedSet.Count == 0)
        {
            throw new ArgumentException("the expected answer has no words", nameof(expected));
        }

        var responseSet = new HashSet<string>(LetterDigitWords(response), StringComparer.Ordinal);
        return (double)expectedSet.Count(responseSet.Contains) / expectedSet.Count;
    }

    /// <summary>RULER string_match_all: mean over expected values of "value appears in response" (case-insensitive).</summary>
    public static double StringMatchAll(string response, IReadOnlyList<string> expectedValues)
    {
        if (expectedValues.Count == 0)
        {
            throw new ArgumentException("no expected values", nameof(expectedValues));
        }

        var lower = response.ToLowerInvariant();
        return (double)expectedValues.Count(v => lower.Contains(v.ToLowerInvariant(), StringComparison.Ordinal)) / expectedValues.Count;
    }

    /// <summary>
    /// rouge_score's ROUGE-1 F-measure: <c>RougeScorer(['rouge1'], use_stemmer=True).score(target, prediction)</c>.
    /// Unigram counts; overlap = Σ min(count); P = overlap / |prediction|, R = overlap / |target|, F = 2PR/(P+R), 0
    /// when either side has no tokens or nothing overlaps.
    /// </summary>
    public static double Rouge1F(string target, string prediction)
    {
        var t = RougeTokens(target);
        var p = RougeTokens(prediction);
        if (t.Count == 0 || p.Count == 0)
        {
            return 0;
        }

        var targetCounts = t.GroupBy(x => x, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var predictionCounts = p.GroupBy(x => x, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var overlap = targetCounts.Sum(kv => Math.Min(kv.Value, predictionCounts.GetValueOrDefault(kv.Key)));
        var precision = (double)overlap / p.Count;
        var recall = (double)overlap / t.Count;
        return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0;
    }

    /// <summary>
    /// rouge_score's tokenizer with the stemmer: lower-case; every run of characters outside [a-z0-9] becomes a
    /// space; split on whitespace; words longer than 3 characters are Porter-stemmed; empty words dropped.
    /// </summary>
    public static IReadOnlyList<string> RougeTokens(string text)
    {
        var lower = PythonLower(text);
        var cleaned = new StringBuilder(lower.Length);
        foreach (var c in lower)
        {
            cleaned.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') ? c : ' ');
        }

        return cleaned.ToString()
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(w => w.Length > 3 ? PorterStemmer.Stem(w) : w)
            .Where(w => w.Length > 0)
            .ToList();
    }

    /// <summary>Python's <c>str.split()</c>: runs of Unicode whitespace as Python defines it separate words.</summary>
    public static List<string> PythonSplit(string text)
    {
        var words = new List<string>();
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var space = i == text.Length || IsPythonWhitespace(text[i]);
            if (!space && start < 0)
            {
                start = i;
            }
            else if (space && start >= 0)
            {
                words.Add(text[start..i]);
                start = -1;
            }
        }

        return words;
    }

    /// <summary>Characters Python's <c>str.isspace()</c> accepts (BMP): .NET's White_Space plus U+001C–U+001F.</summary>
    private static bool IsPythonWhitespace(char c) =>
        char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    // Python's str.lower() and .NET's invariant lower-casing agree on everything these texts hold (they differ only
    // for a few special cases such as U+0130, which Python lowers to two characters).
    private static string PythonLower(string text) => text.ToLower(CultureInfo.InvariantCulture);

    private static IEnumerable<string> LetterDigitWords(string text)
    {
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var word = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (word && start < 0)
            {
                start = i;
            }
            else if (!word && start >= 0)
            {
                yield return text[start..i].ToLowerInvariant();
                start = -1;
            }
        }
    }
}
