using System.Globalization;
using System.Text;
using Workflows.Experiments.Validation;

namespace Workflows.GitOps.Comments;

/// <summary>
/// Markdown for text that came from a pull request (validation messages echo keys and values the author wrote):
/// such text must not become links, images, HTML, mentions or table breaks in a comment the bot signs.
/// </summary>
public static class Md
{
    /// <summary>Inline text with Markdown and HTML metacharacters escaped; '@' before a name gets a zero-width space so it pings nobody.</summary>
    public static string Text(string text)
    {
        text = Untrusted.EscapeLines(text); // control, bidi and zero-width characters as visible escapes
        var sb = new StringBuilder(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '\\' or '`' or '*' or '_' or '[' or ']' or '#' or '|' or '~' or '!':
                    sb.Append('\\').Append(c);
                    break;
                case '<':
                    sb.Append("&lt;");
                    break;
                case '>':
                    sb.Append("&gt;");
                    break;
                case '@' when i + 1 < text.Length && (char.IsLetterOrDigit(text[i + 1]) || text[i + 1] == '-'):
                    sb.Append("@\u200B");
                    break;
                case '\r':
                    break;
                case '\n':
                    sb.Append(' ');
                    break;
                default:
                    sb.Append(c);
                    break;
            }
        }

        return sb.ToString();
    }

    /// <summary>A code span that survives backticks in <paramref name="text"/> (CommonMark: a longer fence, padded).</summary>
    public static string Code(string text)
    {
        text = Untrusted.EscapeLines(text).Replace('\n', ' ');
        var longest = 0;
        var run = 0;
        foreach (var c in text)
        {
            run = c == '`' ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }

        var fence = new string('`', longest + 1);
        var pad = longest > 0 || text.StartsWith(' ') || text.EndsWith(' ') ? " " : "";
        return fence + pad + text + pad + fence;
    }

    /// <summary>A fenced code block whose fence is longer than any backtick run inside.</summary>
    public static string Block(string text)
    {
        var longest = 0;
        var run = 0;
        foreach (var c in text)
        {
            run = c == '`' ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }

        var fence = new string('`', Math.Max(3, longest + 1));
        return $"{fence}text\n{text.TrimEnd('\n')}\n{fence}";
    }

    /// <summary>A URL for a Markdown link or image destination: escaped, with parentheses percent-encoded so they cannot end it.</summary>
    public static string Url(Uri url) =>
        url.AbsoluteUri.Replace("(", "%28", StringComparison.Ordinal).Replace(")", "%29", StringComparison.Ordinal);

    public static string ShortSha(string sha) => sha.Length > 7 ? sha[..7] : sha;

    /// <summary>1h 02m 03s, 7m 03s, 45s, 0.4s.</summary>
    public static string Duration(TimeSpan d)
    {
        if (d < TimeSpan.FromSeconds(1))
        {
            return d.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s";
        }

        var hours = (long)d.TotalHours;
        return hours > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{hours}h {d.Minutes:00}m {d.Seconds:00}s")
            : d.Minutes > 0
                ? string.Create(CultureInfo.InvariantCulture, $"{d.Minutes}m {d.Seconds:00}s")
                : string.Create(CultureInfo.InvariantCulture, $"{d.Seconds}s");
    }
}
