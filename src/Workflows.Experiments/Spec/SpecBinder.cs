using System.Globalization;
using System.Text.RegularExpressions;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Spec;

/// <summary>
/// Binds a located YAML tree to the spec records, collecting every error instead of stopping at the first:
/// unknown keys (with a suggestion), missing keys, wrong types, out-of-range values, bad enum values.
/// A record whose subtree has errors is not constructed, but its siblings are still checked.
/// </summary>
public sealed class SpecBinder(string file)
{
    private readonly List<Diagnostic> diagnostics = [];
    private readonly Dictionary<string, SourceLocation> locations = new(StringComparer.Ordinal);

    public IReadOnlyList<Diagnostic> Diagnostics => diagnostics;

    /// <summary>Where each dotted path was written (for errors found after binding).</summary>
    public IReadOnlyDictionary<string, SourceLocation> Locations => locations;

    public T? Bind<T>(YNode? root)
        where T : class => (T?)Bind(typeof(T), root);

    /// <summary>Binds <paramref name="root"/> to the record type <paramref name="type"/>; null (with diagnostics) when it does not fit.</summary>
    public object? Bind(Type type, YNode? root)
    {
        if (root is null || (root is YScalar s && s.IsNull))
        {
            Error(new SourceLocation(file, 1, 1), DiagnosticCode.MissingKey, "", "the file is empty",
                "start from an example in experiments/ (see README)");
            return null;
        }

        return BindRecord(type, root, "");
    }

    private void Error(SourceLocation at, DiagnosticCode code, string path, string message, string? hint) =>
        diagnostics.Add(new Diagnostic(at, code, path, message, hint));

    // Keys of mappings with free keys (mix, string maps) and unknown keys come from the author: escaped in paths too.
    private static string Join(string path, string key)
    {
        key = Untrusted.Escape(key, Untrusted.ExcerptChars);
        return path.Length == 0 ? key : $"{path}.{key}";
    }

    private static string Describe(YNode node) => node switch
    {
        YMapping => "a mapping",
        YSequence => "a list",
        YScalar { IsNull: true } => "nothing (null)",
        YScalar s => Untrusted.Quote(s.Value),
        _ => "a value",
    };

    private object? BindRecord(Type type, YNode node, string path)
    {
        locations[path] = node.Location;
        var model = SpecModel.Record(type);
        if (node is not YMapping mapping)
        {
            Error(node.Location, DiagnosticCode.WrongType, path,
                $"{(path.Length == 0 ? "the document" : $"'{path}'")} must be a mapping of keys to values, found {Describe(node)}",
                $"write it as 'key: value' lines; known keys: {string.Join(", ", model.Fields.Select(f => f.Key))}");
            return null;
        }

        var before = diagnostics.Count;
        var given = new Dictionary<string, YEntry>(StringComparer.Ordinal);
        foreach (var entry in mapping.Entries)
        {
            if (model.Field(entry.Key.Value) is null)
            {
                var suggestion = Suggest.Closest(entry.Key.Value, model.Fields.Select(f => f.Key));
                Error(entry.Key.Location, DiagnosticCode.UnknownKey, Join(path, entry.Key.Value),
                    $"unknown key {Untrusted.Quote(entry.Key.Value)}{(path.Length == 0 ? "" : $" in {Untrusted.Quote(path)}")}",
                    suggestion is not null
                        ? $"did you mean '{suggestion}'?"
                        : $"known keys here: {string.Join(", ", model.Fields.Select(f => f.Key))}");
                continue;
            }

            given[entry.Key.Value] = entry;
        }

        var args = new object?[model.Fields.Count];
        for (var i = 0; i < model.Fields.Count; i++)
        {
            var field = model.Fields[i];
            var fieldPath = Join(path, field.Key);
            if (!given.TryGetValue(field.Key, out var entry) || (entry.Value is YScalar nullScalar && nullScalar.IsNull))
            {
                if (field.Required)
                {
                    Error(entry?.Key.Location ?? mapping.Location, DiagnosticCode.MissingKey, fieldPath,
                        $"missing required key '{fieldPath}'",
                        field.Doc is null ? $"add '{field.Key}:'" : $"add '{field.Key}:' ({field.Doc})");
                }

                args[i] = field.Parameter.HasDefaultValue ? field.Parameter.DefaultValue : null;
                continue;
            }

            locations[fieldPath] = entry.Value.Location;
            args[i] = BindValue(field.Type, field, entry.Value, fieldPath);
        }

        if (diagnostics.Count > before)
        {
            return null;
        }

        return model.Constructor.Invoke(args);
    }

    private object? BindValue(Type type, FieldModel? field, YNode node, string path)
    {
        if (type == typeof(MixSpec))
        {
            return BindMix(node, path);
        }

        if (type == typeof(LengthBucket))
        {
            return BindBucket(node, path);
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>))
        {
            return BindList(type.GetGenericArguments()[0], field, node, path);
        }

        if (type == typeof(IReadOnlyDictionary<string, string>))
        {
            return BindStringMap(node, path);
        }

        if (SpecModel.IsRecord(type))
        {
            return BindRecord(type, node, path);
        }

        if (node is not YScalar scalar)
        {
            Error(node.Location, DiagnosticCode.WrongType, path, $"'{path}' must be {TypeName(type, field)}, found {Describe(node)}",
                Example(type, field));
            return null;
        }

        return BindScalar(type, field, scalar, path);
    }

    private object? BindList(Type element, FieldModel? field, YNode node, string path)
    {
        if (node is not YSequence sequence)
        {
            Error(node.Location, DiagnosticCode.WrongType, path, $"'{path}' must be a list, found {Describe(node)}",
                $"write it as [a, b] or as '- item' lines");
            return null;
        }

        var listType = typeof(List<>).MakeGenericType(element);
        var list = (System.Collections.IList)Activator.CreateInstance(listType)!;
        var ok = true;
        for (var i = 0; i < sequence.Items.Count; i++)
        {
            locations[$"{path}[{i}]"] = sequence.Items[i].Location;
            var value = BindValue(element, field, sequence.Items[i], $"{path}[{i}]");
            ok &= value is not null;
            if (value is not null)
            {
                list.Add(value);
            }
        }

        return ok ? list : null;
    }

    private object? BindScalar(Type type, FieldModel? field, YScalar scalar, string path)
    {
        var text = scalar.Value;
        if (type == typeof(string))
        {
            if (field?.Pattern is { } pattern && !Regex.IsMatch(text, pattern.Pattern, RegexOptions.None, TimeSpan.FromSeconds(1)))
            {
                Error(scalar.Location, DiagnosticCode.InvalidValue, path, $"{Untrusted.Quote(text)} is not a valid {path}", pattern.Hint);
                return null;
            }

            return text;
        }

        if (type == typeof(bool))
        {
            if (scalar.Plain && text is "true" or "True" or "TRUE")
            {
                return true;
            }

            if (scalar.Plain && text is "false" or "False" or "FALSE")
            {
                return false;
            }

            Error(scalar.Location, DiagnosticCode.WrongType, path, $"'{path}' must be true or false, found {Untrusted.Quote(text)}", "write true or false");
            return null;
        }

        if (type.IsEnum)
        {
            var values = SpecModel.EnumValues(type);
            foreach (var (name, value) in values)
            {
                if (name == text)
                {
                    return value;
                }
            }

            var suggestion = Suggest.Closest(text, values.Select(v => v.Name));
            var code = type == typeof(SlimPajamaSource) ? DiagnosticCode.UnknownSource : DiagnosticCode.InvalidValue;
            Error(scalar.Location, code, path,
                type == typeof(SlimPajamaSource) ? $"unknown source {Untrusted.Quote(text)}" : $"{Untrusted.Quote(text)} is not a valid {Untrusted.Escape(path)}",
                (suggestion is not null ? $"did you mean '{suggestion}'? " : "") + $"expected one of: {string.Join(", ", values.Select(v => v.Name))}");
            return null;
        }

        if (type == typeof(int) || type == typeof(long))
        {
            long value;
            if (field?.Size is { } sizeBase)
            {
                if (!SizeLiteral.TryParse(text, sizeBase, out value, out var error))
                {
                    Error(scalar.Location, DiagnosticCode.WrongType, path, $"'{path}': {error}", Example(type, field));
                    return null;
                }
            }
            else if (!long.TryParse(text.Replace("_", "", StringComparison.Ordinal), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value))
            {
                Error(scalar.Location, DiagnosticCode.WrongType, path, $"'{path}' must be a whole number, found {Untrusted.Quote(text)}", Example(type, field));
                return null;
            }

            if (!InBounds(value, field, scalar, path))
            {
                return null;
            }

            if (type == typeof(int))
            {
                if (value is < int.MinValue or > int.MaxValue)
                {
                    Error(scalar.Location, DiagnosticCode.OutOfRange, path, $"'{path}' = {value} is too large", null);
                    return null;
                }

                return (int)value;
            }

            return value;
        }

        if (type == typeof(double))
        {
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value))
            {
                Error(scalar.Location, DiagnosticCode.WrongType, path, $"'{path}' must be a number, found {Untrusted.Quote(text)}", Example(type, field));
                return null;
            }

            return InBounds(value, field, scalar, path) ? value : null;
        }

        throw new NotSupportedException($"spec type {type} has no binder");
    }

    private bool InBounds(double value, FieldModel? field, YScalar scalar, string path)
    {
        if (field?.Bounds is not { } bounds || (value >= bounds.Min && value <= bounds.Max))
        {
            return true;
        }

        var range = double.IsPositiveInfinity(bounds.Max) ? $"at least {Num(bounds.Min)}" : $"between {Num(bounds.Min)} and {Num(bounds.Max)}";
        Error(scalar.Location, DiagnosticCode.OutOfRange, path, $"'{path}' = {Untrusted.Quote(scalar.Value)} is out of range: must be {range}", null);
        return false;
    }

    private static string Num(double d) => d.ToString("G", CultureInfo.InvariantCulture);

    private Dictionary<string, string>? BindStringMap(YNode node, string path)
    {
        if (node is not YMapping mapping)
        {
            Error(node.Location, DiagnosticCode.WrongType, path, $"'{path}' must be a mapping of names to values, found {Describe(node)}", null);
            return null;
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in mapping.Entries)
        {
            var entryPath = Join(path, entry.Key.Value);
            locations[entryPath] = entry.Value.Location;
            if (entry.Value is YScalar scalar)
            {
                map[entry.Key.Value] = scalar.Value;
            }
            else
            {
                Error(entry.Value.Location, DiagnosticCode.WrongType, entryPath, $"'{entryPath}' must be a single value", "quote it, or use a ${...} expression");
            }
        }

        return map;
    }

    private object? BindMix(YNode node, string path)
    {
        if (node is YScalar { Plain: true, Value: "natural" })
        {
            return MixSpec.Natural;
        }

        if (node is not YMapping mapping)
        {
            Error(node.Location, DiagnosticCode.WrongType, path, $"'{path}' must be 'natural' or a mapping of source to weight, found {Describe(node)}",
                "e.g. mix: { CommonCrawl: 0.5, C4: 0.3, Book: 0.2 }");
            return null;
        }

        var weights = new Dictionary<SlimPajamaSource, double>();
        var ok = true;
        foreach (var entry in mapping.Entries)
        {
            var source = BindScalar(typeof(SlimPajamaSource), null, entry.Key, Join(path, entry.Key.Value));
            var weightPath = Join(path, entry.Key.Value);
            var weight = entry.Value is YScalar w
                ? BindScalar(typeof(double), null, w, weightPath)
                : null;
            if (entry.Value is not YScalar)
            {
                Error(entry.Value.Location, DiagnosticCode.WrongType, weightPath, $"weight of {Untrusted.Quote(entry.Key.Value)} must be a number", null);
            }

            if (source is null || weight is null)
            {
                ok = false;
                continue;
            }

            locations[weightPath] = entry.Value.Location;
            var value = (double)weight;
            if (value is < 0 or > 1)
            {
                Error(entry.Value.Location, DiagnosticCode.OutOfRange, weightPath, $"weight {entry.Value switch { YScalar s => Untrusted.Quote(s.Value), _ => "" }} of {Untrusted.Quote(entry.Key.Value)} must be between 0 and 1", null);
                ok = false;
                continue;
            }

            weights[(SlimPajamaSource)source] = value;
        }

        return ok ? new MixSpec(weights) : null;
    }

    private object? BindBucket(YNode node, string path)
    {
        if (node is YScalar scalar)
        {
            var parts = scalar.Value.Split('-');
            if (parts.Length == 2
                && SizeLiteral.TryParse(parts[0], SizeBase.Binary, out var from, out _)
                && SizeLiteral.TryParse(parts[1], SizeBase.Binary, out var to, out _))
            {
                if (from < to)
                {
                    return new LengthBucket(from, to);
                }

                Error(scalar.Location, DiagnosticCode.OutOfRange, path, $"bucket {Untrusted.Quote(scalar.Value)} is empty: its start must be below its end", "e.g. 4K-128K");
                return null;
            }
        }

        Error(node.Location, DiagnosticCode.WrongType, path, $"'{path}' must be a length range such as 0-4K, found {Describe(node)}", "write 'from-to' with binary suffixes, e.g. 4K-128K");
        return null;
    }

    private static string TypeName(Type type, FieldModel? field) => type switch
    {
        _ when type == typeof(string) => "a string",
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(double) => "a number",
        _ when field?.Size is not null => "a size (integer or literal such as 80K)",
        _ when type == typeof(int) || type == typeof(long) => "a whole number",
        _ when type.IsEnum => $"one of {string.Join(", ", SpecModel.EnumValues(type).Select(v => v.Name))}",
        _ => type.Name,
    };

    private static string? Example(Type type, FieldModel? field) => field?.Size switch
    {
        SizeBase.Decimal => "write a token count such as 500M, 5B or 5000000000 (decimal: 1B = 10^9)",
        SizeBase.Binary => "write a length such as 4K, 64K or 81920 (binary: 1K = 1024)",
        _ when type.IsEnum => $"expected one of: {string.Join(", ", SpecModel.EnumValues(type).Select(v => v.Name))}",
        _ when type == typeof(double) => "e.g. 0.1 or 2.0e-5",
        _ when type == typeof(int) || type == typeof(long) => "e.g. 100",
        _ => null,
    };
}
