using System.Text.RegularExpressions;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Matrix;

/// <summary>
/// One value of an axis: its label (the name part it gives a variant), the YAML it puts at the axis path, and where
/// the label is written (the key of a labelled value; the value itself in a list).
/// </summary>
public sealed record AxisValue(string Label, YNode Node, SourceLocation LabelAt);

/// <summary>
/// One axis: a dotted schema path and its values. A list axis (<c>[none, per-source]</c>) takes its labels from the
/// values as written; a labelled axis (<c>{ original: {...}, per-source: {...} }</c>) names each value, which is
/// how a section or a list becomes one value of an axis.
/// </summary>
public sealed record MatrixAxis(string Path, YScalar Key, bool Labelled, IReadOnlyList<AxisValue> Values);

/// <summary>One setting of an include or exclude entry: a path and the value (or label) given for it.</summary>
public sealed record MatrixSetting(string Path, YScalar Key, YNode Value);

/// <summary>An <c>include</c> or <c>exclude</c> entry: settings by path.</summary>
public sealed record MatrixEntry(SourceLocation Location, IReadOnlyList<MatrixSetting> Settings);

/// <summary>
/// The <c>matrix:</c> section of a sweep file: axes by schema path, <c>exclude</c> (combinations to drop, matched on
/// every path an entry names, as GitHub Actions does), <c>include</c> (extra variants, each its settings over the file)
/// and an optional <c>name</c> template (<c>"{data.upsampling}-5b-80k"</c>).
/// </summary>
public sealed record MatrixDefinition(
    YScalar Key,
    IReadOnlyList<MatrixAxis> Axes,
    IReadOnlyList<MatrixEntry> Exclude,
    IReadOnlyList<MatrixEntry> Include,
    YScalar? NameTemplate);

/// <summary>Reads <c>matrix:</c> from the located YAML tree, reporting every structural error with its position.</summary>
public static partial class MatrixParser
{
    public const string Key = "matrix";
    public static readonly IReadOnlyList<string> ReservedKeys = ["include", "exclude", "name"];

    [GeneratedRegex("^[a-z0-9][a-z0-9-]*$")]
    public static partial Regex LabelPattern();

    [GeneratedRegex(@"\{([^{}]*)\}")]
    public static partial Regex Placeholder();

    public static MatrixDefinition? Parse(YScalar key, YNode node, List<Diagnostic> diagnostics)
    {
        var before = diagnostics.Count;
        void Error(SourceLocation at, DiagnosticCode code, string path, string message, string? hint) =>
            diagnostics.Add(new Diagnostic(at, code, path, message, hint));

        if (node is not YMapping mapping || mapping.Entries.Count == 0)
        {
            Error(node.Location, DiagnosticCode.WrongType, Key, "'matrix' must be a mapping of schema paths to their values",
                "e.g. matrix: { data.upsampling.mode: [none, per-source], training.lr: [1.0e-5, 2.0e-5] }");
            return null;
        }

        var axes = new List<MatrixAxis>();
        var exclude = new List<MatrixEntry>();
        var include = new List<MatrixEntry>();
        YScalar? template = null;
        foreach (var entry in mapping.Entries)
        {
            var name = entry.Key.Value;
            var path = $"{Key}.{name}";
            switch (name)
            {
                case "exclude":
                    exclude.AddRange(Entries(entry, diagnostics));
                    continue;
                case "include":
                    include.AddRange(Entries(entry, diagnostics));
                    continue;
                case "name":
                    if (entry.Value is YScalar { IsNull: false } t)
                    {
                        template = t;
                    }
                    else
                    {
                        Error(entry.Value.Location, DiagnosticCode.WrongType, path, "'matrix.name' must be a name template",
                            "e.g. name: \"{data.upsampling}-5b-80k\": each {path} is replaced by the variant's label for that axis");
                    }

                    continue;
            }

            var resolved = SpecPaths.Resolve(name);
            if (!resolved.IsValid)
            {
                Error(entry.Key.Location, DiagnosticCode.UnknownKey, path, resolved.Error!, resolved.Hint);
                continue;
            }

            if (axes.FirstOrDefault(a => SpecPaths.Overlap(a.Path, name)) is { } other)
            {
                Error(entry.Key.Location, DiagnosticCode.InvalidValue, path, $"axis '{name}' overlaps axis '{other.Path}' (line {other.Key.Location.Line})",
                    "vary a section or a value inside it, not both");
                continue;
            }

            if (Axis(entry, path, diagnostics) is { } axis)
            {
                axes.Add(axis);
            }
        }

        if (axes.Count == 0 && include.Count == 0 && diagnostics.Count == before)
        {
            Error(mapping.Location, DiagnosticCode.MissingKey, Key, "the matrix has no axes",
                "add at least one axis, e.g. data.upsampling.mode: [none, per-source]");
        }

        return diagnostics.Count > before ? null : new MatrixDefinition(key, axes, exclude, include, template);
    }

    private static MatrixAxis? Axis(YEntry entry, string path, List<Diagnostic> diagnostics)
    {
        var before = diagnostics.Count;
        var values = new List<AxisValue>();
        switch (entry.Value)
        {
            case YSequence { Items.Count: > 0 } list:
                foreach (var item in list.Items)
                {
                    if (item is not YScalar { IsNull: false } scalar)
                    {
                        diagnostics.Add(new Diagnostic(item.Location, DiagnosticCode.WrongType, path,
                            $"a value of axis '{entry.Key.Value}' is {(item is YScalar ? "empty" : "a section or a list")}: such values need a label",
                            $"write the axis as a mapping of label to value, e.g. {entry.Key.Value}: {{ first: ..., second: ... }}"));
                        continue;
                    }

                    var label = Slug(scalar.Value);
                    if (label.Length == 0)
                    {
                        diagnostics.Add(new Diagnostic(item.Location, DiagnosticCode.InvalidValue, path,
                            $"value '{scalar.Value}' of axis '{entry.Key.Value}' gives no name: it has no letters or digits", "label it: write the axis as a mapping of label to value"));
                        continue;
                    }

                    if (values.FirstOrDefault(v => v.Node is YScalar s && s.Value == scalar.Value) is { } twice)
                    {
                        diagnostics.Add(new Diagnostic(item.Location, DiagnosticCode.DuplicateKey, path,
                            $"value '{scalar.Value}' is listed twice in axis '{entry.Key.Value}' (first at line {twice.Node.Location.Line})", "list each value once"));
                        continue;
                    }

                    values.Add(new AxisValue(label, scalar, scalar.Location));
                }

                return diagnostics.Count > before ? null : new MatrixAxis(entry.Key.Value, entry.Key, false, values);

            case YMapping { Entries.Count: > 0 } labelled:
                foreach (var value in labelled.Entries)
                {
                    if (!LabelPattern().IsMatch(value.Key.Value))
                    {
                        diagnostics.Add(new Diagnostic(value.Key.Location, DiagnosticCode.InvalidValue, path,
                            $"label '{value.Key.Value}' of axis '{entry.Key.Value}' becomes part of variant names, so it must be lower-case letters, digits and '-'",
                            Slug(value.Key.Value) is { Length: > 0 } s ? $"e.g. '{s}'" : null));
                        continue;
                    }

                    if (value.Value is YScalar { IsNull: true })
                    {
                        diagnostics.Add(new Diagnostic(value.Value.Location, DiagnosticCode.MissingKey, path,
                            $"label '{value.Key.Value}' of axis '{entry.Key.Value}' has no value", null));
                        continue;
                    }

                    values.Add(new AxisValue(value.Key.Value, value.Value, value.Key.Location));
                }

                return diagnostics.Count > before ? null : new MatrixAxis(entry.Key.Value, entry.Key, true, values);

            default:
                diagnostics.Add(new Diagnostic(entry.Value.Location, DiagnosticCode.WrongType, path,
                    $"axis '{entry.Key.Value}' must list at least one value",
                    $"write [a, b] for plain values, or {{ label-a: value, label-b: value }} to name each value"));
                return null;
        }
    }

    private static IEnumerable<MatrixEntry> Entries(YEntry entry, List<Diagnostic> diagnostics)
    {
        var path = $"{Key}.{entry.Key.Value}";
        if (entry.Value is not YSequence list)
        {
            diagnostics.Add(new Diagnostic(entry.Value.Location, DiagnosticCode.WrongType, path,
                $"'matrix.{entry.Key.Value}' must be a list of entries, each a mapping of axis path to value",
                $"e.g. {entry.Key.Value}: [ {{ data.upsampling.mode: none, training.lr: 2.0e-5 }} ]"));
            yield break;
        }

        foreach (var item in list.Items)
        {
            if (item is not YMapping { Entries.Count: > 0 } settings)
            {
                diagnostics.Add(new Diagnostic(item.Location, DiagnosticCode.WrongType, path,
                    $"an entry of 'matrix.{entry.Key.Value}' must be a mapping of axis path to value", null));
                continue;
            }

            var ok = true;
            foreach (var setting in settings.Entries)
            {
                var resolved = SpecPaths.Resolve(setting.Key.Value);
                if (!resolved.IsValid || setting.Key.Value == "name")
                {
                    diagnostics.Add(new Diagnostic(setting.Key.Location, DiagnosticCode.UnknownKey, path,
                        resolved.Error ?? "the name of a variant is derived, it cannot be set", resolved.Hint ?? "use matrix.name for a name template"));
                    ok = false;
                }
            }

            if (ok)
            {
                yield return new MatrixEntry(item.Location, [.. settings.Entries.Select(s => new MatrixSetting(s.Key.Value, s.Key, s.Value))]);
            }
        }
    }

    /// <summary>
    /// A value as a name part: lower-case, a '.' between digits as 'p' (0.001 → 0p001), every other run of characters
    /// outside [a-z0-9] as one '-', trimmed.
    /// </summary>
    public static string Slug(string value)
    {
        var lower = value.Trim().ToLowerInvariant();
        var chars = new System.Text.StringBuilder(lower.Length);
        for (var i = 0; i < lower.Length; i++)
        {
            var c = lower[i];
            if (c is >= 'a' and <= 'z' or >= '0' and <= '9')
            {
                chars.Append(c);
            }
            else if (c == '.' && i > 0 && char.IsAsciiDigit(lower[i - 1]) && i + 1 < lower.Length && char.IsAsciiDigit(lower[i + 1]))
            {
                chars.Append('p');
            }
            else if (chars.Length > 0 && chars[^1] != '-')
            {
                chars.Append('-');
            }
        }

        return chars.ToString().Trim('-');
    }
}
