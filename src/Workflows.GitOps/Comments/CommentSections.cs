using System.Text;

namespace Workflows.GitOps.Comments;

/// <summary>
/// One sticky comment per experiment holds up to two sections: the run (submitted / results) and the plan. Each is
/// delimited by hidden markers so that the plan job and the report step can each replace their own part without
/// knowing the other's content: a re-plan after a push keeps the last run's results, a report keeps the plan.
/// The run section comes first because once a run exists it is what readers come for.
/// </summary>
public static class CommentSections
{
    public const string Run = "run";
    public const string Plan = "plan";

    /// <summary>Order of sections in the body.</summary>
    private static readonly string[] Order = [Run, Plan];

    /// <summary>GitHub rejects comment bodies over 65,536 characters.</summary>
    public const int MaxBodyLength = 65536;

    private static string Start(string section) => $"<!-- wf:section={section} -->";

    private static string End(string section) => $"<!-- wf:end={section} -->";

    /// <summary>The content of a section in a body, or null when the body has none.</summary>
    public static string? Read(string? body, string section)
    {
        if (body is null)
        {
            return null;
        }

        var start = body.IndexOf(Start(section), StringComparison.Ordinal);
        var end = body.IndexOf(End(section), StringComparison.Ordinal);
        if (start < 0 || end < start)
        {
            return null;
        }

        start += Start(section).Length;
        return body[start..end].Trim('\n');
    }

    /// <summary>
    /// The body of <paramref name="experiment"/>'s comment with <paramref name="section"/> set to <paramref name="content"/>
    /// and every other section kept from <paramref name="existingBody"/> (null: a new comment).
    /// </summary>
    public static string Compose(string experiment, string? existingBody, string section, string content)
    {
        if (Array.IndexOf(Order, section) < 0)
        {
            throw new ArgumentException($"unknown section '{section}' (known: {string.Join(", ", Order)})", nameof(section));
        }

        var sb = new StringBuilder();
        sb.Append(CommentMarker.For(experiment)).Append('\n');
        foreach (var name in Order)
        {
            var text = name == section ? content : Read(existingBody, name);
            if (text is null)
            {
                continue;
            }

            // The blank line before the end marker closes any table or list the section ends with.
            sb.Append(Start(name)).Append('\n').Append(text.Trim('\n')).Append("\n\n").Append(End(name)).Append('\n');
        }

        return Fit(sb.ToString());
    }

    /// <summary>
    /// Keeps a body under GitHub's limit. Plans and loss tables are bounded in practice; this is the last line of
    /// defence so a huge validation error list cannot make the API call fail and leave a stale comment.
    /// </summary>
    public static string Fit(string body)
    {
        if (body.Length <= MaxBodyLength)
        {
            return body;
        }

        const string note = "\n\n_(comment truncated: GitHub allows 65,536 characters; the full text is in the workflow's job summary)_\n";
        return body[..(MaxBodyLength - note.Length)] + note;
    }
}
