using System.Globalization;
using System.Text;

namespace Workflows.Experiments.Validation;

/// <summary>
/// The one way text from a pull request (keys, values, file names, comment words, file contents in exception messages)
/// is printed: control characters, bidi overrides, zero-width and line-separator characters become visible escapes, and
/// excerpts are cut. Printed raw, such text colours a terminal (ESC[31m), reorders a line (U+202E), or starts a new log
/// line that GitHub Actions reads as a workflow command (<c>\n::error::</c>, <c>\n::add-mask::</c>).
/// </summary>
/// <remarks>
/// <see cref="Escape"/> is idempotent on its own output (a backslash is not doubled), so a message that already holds a
/// <see cref="Quote"/>d excerpt can be escaped again where it is printed.
/// </remarks>
public static class Untrusted
{
    /// <summary>Characters of an excerpt: enough to recognise a value, too few to carry a secret someone pointed us at.</summary>
    public const int ExcerptChars = 64;

    /// <summary>
    /// <paramref name="text"/> with every unsafe character escaped (<c>\n</c>, <c>\r</c>, <c>\t</c>, <c>\e</c>,
    /// <c>\xNN</c>, <c>\uNNNN</c>); cut after <paramref name="maxChars"/> characters with an ellipsis.
    /// </summary>
    public static string Escape(string? text, int maxChars = int.MaxValue)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "";
        }

        var cut = text.Length > maxChars;
        var length = cut ? maxChars : text.Length;
        if (cut && length > 0 && char.IsHighSurrogate(text[length - 1]))
        {
            length--; // never split a pair: a lone half would be escaped, which reads as if the text held one
        }

        StringBuilder? sb = null;
        for (var i = 0; i < length; i++)
        {
            var c = text[i];
            string? escaped;
            if (char.IsHighSurrogate(c) && i + 1 < length && char.IsLowSurrogate(text[i + 1]))
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(text, i);
                escaped = category is UnicodeCategory.Format or UnicodeCategory.PrivateUse
                    ? $"\\U{char.ConvertToUtf32(c, text[i + 1]):X8}"
                    : null;
                if (escaped is null)
                {
                    sb?.Append(c).Append(text[i + 1]);
                    i++;
                    continue;
                }

                sb ??= new StringBuilder(text, 0, i, length + 16);
                sb.Append(escaped);
                i++;
                continue;
            }

            escaped = EscapeOf(c);
            if (escaped is null)
            {
                sb?.Append(c);
                continue;
            }

            sb ??= new StringBuilder(text, 0, i, length + 16);
            sb.Append(escaped);
        }

        var result = sb?.ToString() ?? (cut ? text[..length] : text);
        return cut ? result + "…" : result;
    }

    /// <summary>
    /// A short excerpt in single quotes, escaped: <c>'abc'</c>, or <c>'first 64 characters…' (3,214 characters)</c>.
    /// Every diagnostic that echoes what the author wrote goes through here.
    /// </summary>
    public static string Quote(string? text, int maxChars = ExcerptChars)
    {
        text ??= "";
        var quoted = $"'{Escape(text, maxChars)}'";
        return text.Length > maxChars
            ? quoted + string.Create(CultureInfo.InvariantCulture, $" ({text.Length:N0} characters)")
            : quoted;
    }

    /// <summary>
    /// <see cref="Escape"/> line by line: newlines stay (for text that is meant to span lines, such as a whole command
    /// output or a Markdown block), every other unsafe character is escaped.
    /// </summary>
    public static string EscapeLines(string? text)
    {
        if (string.IsNullOrEmpty(text) || !HasUnsafeCharacters(text))
        {
            return text ?? "";
        }

        return string.Join('\n', text.Split('\n').Select(line => Escape(line)));
    }

    /// <summary>True when <paramref name="text"/> holds a character <see cref="Escape"/> would escape.</summary>
    public static bool HasUnsafeCharacters(string? text) => !string.IsNullOrEmpty(text) && Escape(text) != text;

    private static string? EscapeOf(char c)
    {
        switch (c)
        {
            case '\n':
                return "\\n";
            case '\r':
                return "\\r";
            case '\t':
                return "\\t";
            case '\u001b':
                return "\\e";
        }

        if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F))
        {
            // C0 and C1 controls (0x9B is a one-byte CSI to some terminals).
            return string.Create(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
        }

        if (char.IsSurrogate(c))
        {
            return string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"); // a lone half: not text
        }

        return CharUnicodeInfo.GetUnicodeCategory(c) switch
        {
            // Format: bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069), marks (U+200E/F, U+061C), zero-width
            // characters (U+200B-200D, U+2060, U+FEFF), soft hyphen. Line/paragraph separators end a line in some viewers.
            UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.PrivateUse
                => string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
            _ => null,
        };
    }
}
