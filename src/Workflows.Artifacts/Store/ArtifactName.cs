using System.Diagnostics.CodeAnalysis;

namespace Workflows.Artifacts.Store;

/// <summary>
/// The rules every blob name and prefix in the artifact store obeys. Names are built from user-influenced parts
/// (activity names, run ids, shard paths); these rules make sure none of them can climb out of the prefix it was
/// put under (<c>..</c>), become absolute (leading <c>/</c>), or smuggle in characters that blob URLs, file systems
/// or the shell would reinterpret (<c>%</c>, <c>\</c>, <c>:</c>, whitespace, control characters).
/// </summary>
/// <remarks>
/// A name is 1..1024 characters of segments joined by <c>/</c>; each segment is 1..255 characters of
/// <c>[A-Za-z0-9._=-]</c> and is not made of dots only (<c>.</c>, <c>..</c>, <c>...</c>). No empty segments, so no
/// leading, trailing or doubled <c>/</c>. A prefix is empty or a name followed by <c>/</c>.
/// </remarks>
public static class ArtifactName
{
    public const int MaxLength = 1024;
    public const int MaxSegmentLength = 255;

    public static bool IsValid(string? name) => Explain(name) is null;

    /// <summary>Throws <see cref="ArgumentException"/> naming the broken rule when <paramref name="name"/> is not valid.</summary>
    public static string Validate([NotNull] string? name, string parameterName = "name")
    {
        var problem = Explain(name);
        if (name is null || problem is not null)
        {
            throw new ArgumentException($"Invalid artifact name '{Printable(name)}': {problem}.", parameterName);
        }
        return name;
    }

    /// <summary>Validates a listing prefix: empty, or a valid name followed by '/'.</summary>
    public static string ValidatePrefix(string? prefix, string parameterName = "prefix")
    {
        if (string.IsNullOrEmpty(prefix))
        {
            return "";
        }
        if (!prefix.EndsWith('/'))
        {
            throw new ArgumentException($"Invalid artifact prefix '{Printable(prefix)}': a prefix must end with '/'.", parameterName);
        }
        var problem = Explain(prefix[..^1]);
        if (problem is not null)
        {
            throw new ArgumentException($"Invalid artifact prefix '{Printable(prefix)}': {problem}.", parameterName);
        }
        return prefix;
    }

    /// <summary>Validates one path segment (an activity name, a run id, an attempt id).</summary>
    public static string ValidateSegment([NotNull] string? segment, string parameterName = "segment")
    {
        var problem = segment is null ? "it is null" : segment.Contains('/') ? "a single segment may not contain '/'" : Explain(segment);
        if (segment is null || problem is not null)
        {
            throw new ArgumentException($"Invalid artifact name segment '{Printable(segment)}': {problem}.", parameterName);
        }
        return segment;
    }

    /// <summary>Joins a validated prefix and a relative name; the result is always inside the prefix.</summary>
    public static string Combine(string prefix, string relativeName)
    {
        ValidatePrefix(prefix);
        Validate(relativeName, nameof(relativeName));
        return prefix + relativeName;
    }

    /// <summary>Why <paramref name="name"/> is not a valid name, or null when it is.</summary>
    public static string? Explain(string? name)
    {
        if (name is null)
        {
            return "it is null";
        }
        if (name.Length == 0)
        {
            return "it is empty";
        }
        if (name.Length > MaxLength)
        {
            return $"it is longer than {MaxLength} characters";
        }
        if (name[0] == '/')
        {
            return "it starts with '/' (names are relative to the store)";
        }
        if (name[^1] == '/')
        {
            return "it ends with '/'";
        }
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0)
            {
                return "it contains an empty segment ('//')";
            }
            if (segment.Length > MaxSegmentLength)
            {
                return $"a segment is longer than {MaxSegmentLength} characters";
            }
            if (segment.All(c => c == '.'))
            {
                return $"segment '{segment}' is made of dots only ('.' and '..' could escape the prefix)";
            }
            foreach (var c in segment)
            {
                if (!IsAllowed(c))
                {
                    return $"character '{Printable(c.ToString())}' is not allowed (allowed: A-Z a-z 0-9 . _ = -)";
                }
            }
        }
        return null;
    }

    private static bool IsAllowed(char c) =>
        c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '.' or '_' or '-' or '=';

    // Error messages echo the offending name; control characters are shown escaped so a log line stays one line.
    private static string Printable(string? s) =>
        s is null ? "<null>" : string.Concat(s.Take(200).Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}
