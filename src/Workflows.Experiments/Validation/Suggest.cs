namespace Workflows.Experiments.Validation;

/// <summary>"Did you mean" suggestions by edit distance.</summary>
public static class Suggest
{
    public static string? Closest(string input, IEnumerable<string> candidates)
    {
        var list = candidates as IReadOnlyCollection<string> ?? candidates.ToList();

        // A value that is the start of exactly one candidate ('a100' for 'a100-80g') means that candidate.
        var prefixed = list.Where(c => input.Length >= 2 && c.StartsWith(input, StringComparison.OrdinalIgnoreCase)).ToList();
        if (prefixed.Count == 1)
        {
            return prefixed[0];
        }

        string? best = null;
        var bestDistance = int.MaxValue;
        var lowered = input.ToLowerInvariant();
        foreach (var candidate in list)
        {
            var d = Distance(lowered, candidate.ToLowerInvariant());
            if (d < bestDistance)
            {
                bestDistance = d;
                best = candidate;
            }
        }

        var allowed = Math.Max(2, input.Length / 3);
        return bestDistance <= allowed ? best : null;
    }

    /// <summary>Damerau-Levenshtein (optimal string alignment) distance.</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}
