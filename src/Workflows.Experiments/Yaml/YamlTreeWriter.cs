using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Workflows.Experiments.Yaml;

/// <summary>
/// Writes a <see cref="YNode"/> tree back as block-style YAML that <see cref="YamlTreeReader"/> reads into the same
/// values: a plain scalar stays plain when it is safely plain in any context (names, numbers, sizes, booleans, paths),
/// everything else is double-quoted with escapes. Comments and flow style are not kept. Used to store each variant of
/// a sweep file as the standalone experiment a run records (and <c>wf rerun</c> reloads).
/// </summary>
public static partial class YamlTreeWriter
{
    [GeneratedRegex(@"^[A-Za-z0-9_./+~][A-Za-z0-9_./+~ -]*$")]
    private static partial Regex SafePlain();

    public static string Write(YNode root, IEnumerable<string>? headerComments = null)
    {
        var sb = new StringBuilder();
        foreach (var line in headerComments ?? [])
        {
            sb.Append("# ").Append(line.Replace("\n", " ", StringComparison.Ordinal)).Append('\n');
        }

        switch (root)
        {
            case YMapping { Entries.Count: > 0 } m:
                WriteMapping(sb, m, 0);
                break;
            case YSequence { Items.Count: > 0 } s:
                WriteSequence(sb, s, 0);
                break;
            default:
                sb.Append(Inline(root)).Append('\n');
                break;
        }

        return sb.ToString();
    }

    private static void WriteMapping(StringBuilder sb, YMapping mapping, int indent, bool firstLineIndented = true)
    {
        var first = true;
        foreach (var entry in mapping.Entries)
        {
            if (!first || firstLineIndented)
            {
                sb.Append(' ', indent);
            }

            first = false;
            sb.Append(Scalar(entry.Key)).Append(':');
            WriteValue(sb, entry.Value, indent);
        }
    }

    private static void WriteSequence(StringBuilder sb, YSequence sequence, int indent, bool firstLineIndented = true)
    {
        var first = true;
        foreach (var item in sequence.Items)
        {
            if (!first || firstLineIndented)
            {
                sb.Append(' ', indent);
            }

            first = false;
            sb.Append('-');
            switch (item)
            {
                case YMapping { Entries.Count: > 0 } m:
                    sb.Append(' ');
                    WriteMapping(sb, m, indent + 2, firstLineIndented: false);
                    break;
                case YSequence { Items.Count: > 0 } s:
                    sb.Append(' ');
                    WriteSequence(sb, s, indent + 2, firstLineIndented: false);
                    break;
                default:
                    sb.Append(' ').Append(Inline(item)).Append('\n');
                    break;
            }
        }
    }

    /// <summary>After "key:": a nested block on the following lines, or " value" on the same line.</summary>
    private static void WriteValue(StringBuilder sb, YNode value, int indent)
    {
        switch (value)
        {
            case YMapping { Entries.Count: > 0 } m:
                sb.Append('\n');
                WriteMapping(sb, m, indent + 2);
                break;
            case YSequence { Items.Count: > 0 } s:
                sb.Append('\n');
                WriteSequence(sb, s, indent + 2);
                break;
            default:
                sb.Append(' ').Append(Inline(value)).Append('\n');
                break;
        }
    }

    private static string Inline(YNode node) => node switch
    {
        YMapping => "{}",
        YSequence => "[]",
        YScalar s => Scalar(s),
        _ => throw new ArgumentException($"unknown node {node.GetType().Name}", nameof(node)),
    };

    private static string Scalar(YScalar scalar)
    {
        if (scalar.IsNull)
        {
            return "null";
        }

        var v = scalar.Value;
        if (scalar.Plain && SafePlain().IsMatch(v) && !v.EndsWith(' ') && !v.Contains(" #", StringComparison.Ordinal))
        {
            return v;
        }

        var sb = new StringBuilder(v.Length + 2).Append('"');
        foreach (var c in v)
        {
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\t' => "\\t",
                '\r' => "\\r",
                _ when char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085' or '\uFEFF' => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture),
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }
}
