using System.Text.RegularExpressions;

namespace Workflows.GitOps.Comments;

/// <summary>
/// The hidden marker that identifies an experiment's sticky comment: <c>&lt;!-- wf:experiment=NAME --&gt;</c> as the
/// first line of the body. HTML comments do not render on GitHub, so the marker is invisible to readers.
/// </summary>
public static partial class CommentMarker
{
    /// <summary>Experiment names as the spec allows them (lower-case letters, digits, '-'); checked so a marker never breaks.</summary>
    [GeneratedRegex("^[a-z0-9][a-z0-9-]*$")]
    private static partial Regex NamePattern();

    // Only at the very start of the body (leading whitespace allowed): a person quoting or citing the marker in a
    // comment of their own ("> <!-- wf:...") must never make the bot overwrite that person's comment.
    [GeneratedRegex(@"\A\s*<!-- wf:experiment=([a-z0-9][a-z0-9-]*) -->")]
    private static partial Regex LeadingMarker();

    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    public static string For(string experiment)
    {
        if (!IsValidName(experiment))
        {
            throw new ArgumentException($"'{experiment}' is not an experiment name (lower-case letters, digits and '-')", nameof(experiment));
        }

        return $"<!-- wf:experiment={experiment} -->";
    }

    /// <summary>The experiment a comment body belongs to, or null when it does not start with a marker.</summary>
    public static string? ExperimentOf(string? body)
    {
        if (body is null)
        {
            return null;
        }

        var m = LeadingMarker().Match(body);
        return m.Success ? m.Groups[1].Value : null;
    }
}
