using System.Text.RegularExpressions;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Matrix;

/// <summary>
/// Expands a sweep file into its variants. The file minus <c>matrix:</c> is the base; each variant is the base with
/// its axis values put at their paths (in the located tree, so an error inside a value points at the value in the
/// matrix), then bound, checked and policed like any experiment file. Names are derived from the labels, ordered by
/// path, so reordering keys or reformatting the file changes no name and no hash.
/// </summary>
/// <remarks>
/// Errors a variant has and the base alone also has are reported once, where they are. Errors only a variant has were
/// caused by its values: they are reported at the axis value (an error inside it is there already; a conflict with
/// another field is moved to the value whose path is closest, naming the other field's line in the hint), once for
/// every variant that shares them.
/// </remarks>
public static class MatrixExpander
{
    /// <summary>A sweep file holds at most this many variants: each is a full training run.</summary>
    public const int MaxVariants = 64;

    /// <summary>Combinations are not enumerated beyond this (excludes cannot bring a product this large under the limit sensibly).</summary>
    private const long MaxCombinations = 10_000;

    private static readonly Regex NamePattern = new(
        SpecModel.Record(typeof(ExperimentSpec)).Field("name")!.Pattern!.Pattern, RegexOptions.None, TimeSpan.FromSeconds(1));

    private sealed record Candidate(IReadOnlyList<AxisAssignment> Values, SourceLocation Origin, bool FromInclude);

    public static SweepLoadResult Expand(string file, YMapping root, IReadOnlyList<Diagnostic> readDiagnostics, LoadOptions options)
    {
        var diagnostics = new List<Diagnostic>(readDiagnostics);
        var matrixEntry = root.Entries.First(e => e.Key.Value == MatrixParser.Key);
        var baseTree = root with { Entries = [.. root.Entries.Where(e => !ReferenceEquals(e, matrixEntry))] };
        var baseName = (baseTree["name"] as YScalar)?.Value;
        var baseResult = ExperimentLoader.LoadParsed(file, new YamlTreeReader.Result(baseTree, []), options);
        var matrixErrors = new List<Diagnostic>();
        var matrix = MatrixParser.Parse(matrixEntry.Key, matrixEntry.Value, matrixErrors);
        if (matrix is null)
        {
            // Report the base's own errors too, except those about paths an axis would set.
            var axisPaths = (matrixEntry.Value as YMapping)?.Entries.Select(e => e.Key.Value).Where(k => !MatrixParser.ReservedKeys.Contains(k)).ToList() ?? [];
            diagnostics.AddRange(matrixErrors);
            diagnostics.AddRange(baseResult.Diagnostics.Where(d => !axisPaths.Any(p => SpecPaths.Overlap(p, SpecPaths.Unindexed(d.Path)))));
            return Result(file, baseName, [], diagnostics);
        }

        var candidates = Combinations(matrix, diagnostics);
        if (candidates is null)
        {
            return Result(file, baseName, [], diagnostics);
        }

        var named = Name(matrix, candidates, baseName ?? Path.GetFileNameWithoutExtension(file), diagnostics);
        if (named is null)
        {
            return Result(file, baseName, [], diagnostics);
        }

        var baseKeys = baseResult.Diagnostics.Select(Identity).ToHashSet();
        var reported = new HashSet<(SourceLocation, DiagnosticCode, string, string)>();
        var caused = new List<(Diagnostic Diagnostic, List<string> Names)>();
        var variants = new List<SweepVariant>();
        for (var i = 0; i < named.Count; i++)
        {
            var (name, candidate) = named[i];
            var tree = candidate.Values.Aggregate(baseTree, (t, v) => SetPath(t, v.Path.Split('.'), v.Node, matrix.Key.Location));
            var loaded = ExperimentLoader.LoadParsed(file, new YamlTreeReader.Result(tree, []), options);
            var valueLocations = candidate.Values.SelectMany(v => Locations(v.Node)).ToHashSet();
            foreach (var d in loaded.Diagnostics)
            {
                if (baseKeys.Contains(Identity(d)))
                {
                    if (reported.Add(Identity(d)))
                    {
                        diagnostics.Add(d);
                    }

                    continue;
                }

                var located = valueLocations.Contains(d.Location) ? d : MoveToValue(d, candidate.Values);
                var same = caused.FirstOrDefault(c => c.Diagnostic == located);
                if (same.Diagnostic is null)
                {
                    caused.Add((located, [name]));
                }
                else
                {
                    same.Names.Add(name);
                }
            }

            if (loaded.IsValid)
            {
                var spec = loaded.Spec! with { Name = name };
                var header = new[]
                {
                    $"Variant {i + 1} of {named.Count} of the sweep '{baseName}' ({Path.GetFileName(file)}): {Describe(candidate.Values)}",
                    "Written by wf from the sweep file; change that file, not this one.",
                };
                var yaml = YamlTreeWriter.Write(SetPath(tree, ["name"], new YScalar(matrix.Key.Location, name, Plain: true), matrix.Key.Location), header);
                variants.Add(new SweepVariant(i + 1, name, spec, CanonicalForm.Hash(spec), candidate.Values, yaml));
            }
        }

        foreach (var (d, names) in caused)
        {
            var who = names.Count == 1
                ? $"variant '{names[0]}' ({Describe(named.First(n => n.Name == names[0]).Candidate.Values)})"
                : $"variants {string.Join(", ", names.Select(n => $"'{n}'"))}";
            diagnostics.Add(d with { Message = $"in {who}: {d.Message}" });
        }

        if (diagnostics.Count == 0)
        {
            RefuseIdentical(matrix, variants, diagnostics);
        }

        return Result(file, baseName, diagnostics.Count == 0 ? variants : [], diagnostics);
    }

    private static SweepLoadResult Result(string file, string? name, IReadOnlyList<SweepVariant> variants, List<Diagnostic> diagnostics) =>
        new(file, name, true, variants, [.. diagnostics
            .OrderBy(d => d.Location.Line).ThenBy(d => d.Location.Column).ThenBy(d => d.Path, StringComparer.Ordinal)]);

    private static (SourceLocation, DiagnosticCode, string, string) Identity(Diagnostic d) => (d.Location, d.Code, d.Path, d.Message);

    private static string Describe(IReadOnlyList<AxisAssignment> values) => string.Join(", ", values.Select(v => $"{v.Path} = {v.Label}"));

    /// <summary>Every combination of axis values minus the excluded ones (first axis varying slowest), then the includes.</summary>
    private static List<Candidate>? Combinations(MatrixDefinition matrix, List<Diagnostic> diagnostics)
    {
        var before = diagnostics.Count;
        long product = matrix.Axes.Count == 0 ? 0 : 1;
        foreach (var axis in matrix.Axes)
        {
            product = Math.Min(product * axis.Values.Count, long.MaxValue / 1024);
        }

        var sizes = string.Join(" × ", matrix.Axes.Select(a => $"{a.Path}: {a.Values.Count}"));
        if (product + matrix.Include.Count > MaxCombinations)
        {
            diagnostics.Add(TooMany(matrix, $"the matrix has {product:N0} combinations ({sizes})"));
            return null;
        }

        var excludes = matrix.Exclude.Select(e => ExcludeMatcher(matrix, e, diagnostics)).ToList();
        var includes = matrix.Include.Select(e => IncludeValues(matrix, e, diagnostics)).ToList();
        if (diagnostics.Count > before)
        {
            return null;
        }

        var result = new List<Candidate>();
        var index = new int[matrix.Axes.Count];
        for (long n = 0; n < product; n++)
        {
            var values = matrix.Axes.Select((a, i) => new AxisAssignment(a.Path, a.Values[index[i]].Label, a.Values[index[i]].Node, a.Values[index[i]].LabelAt)).ToList();
            if (!excludes.Any(match => match!(values)))
            {
                result.Add(new Candidate(values, matrix.Key.Location, false));
            }

            for (var i = index.Length - 1; i >= 0; i--)
            {
                if (++index[i] < matrix.Axes[i].Values.Count)
                {
                    break;
                }

                index[i] = 0;
            }
        }

        result.AddRange(includes.Select((values, i) => new Candidate(values!, matrix.Include[i].Location, true)));
        if (result.Count > MaxVariants)
        {
            var after = matrix.Exclude.Count + matrix.Include.Count > 0 ? $" after {matrix.Exclude.Count} exclude and {matrix.Include.Count} include entries" : "";
            diagnostics.Add(TooMany(matrix, $"the matrix expands to {result.Count:N0} variants ({sizes}){after}"));
            return null;
        }

        if (result.Count == 0)
        {
            diagnostics.Add(new Diagnostic(matrix.Key.Location, DiagnosticCode.InvalidValue, MatrixParser.Key,
                "every combination is excluded: the sweep has no variants", "remove an exclude entry, or add an include"));
            return null;
        }

        return result;
    }

    private static Diagnostic TooMany(MatrixDefinition matrix, string what) =>
        new(matrix.Key.Location, DiagnosticCode.OutOfRange, MatrixParser.Key,
            $"{what}; a sweep file may have at most {MaxVariants} (each variant is a full training run)",
            "remove values, exclude combinations, or split the sweep into several files");

    private static Func<IReadOnlyList<AxisAssignment>, bool>? ExcludeMatcher(MatrixDefinition matrix, MatrixEntry entry, List<Diagnostic> diagnostics)
    {
        var conditions = new List<(string Path, string Label)>();
        foreach (var setting in entry.Settings)
        {
            var axis = matrix.Axes.FirstOrDefault(a => a.Path == setting.Path);
            if (axis is null)
            {
                diagnostics.Add(new Diagnostic(setting.Key.Location, DiagnosticCode.UnknownKey, "matrix.exclude",
                    $"exclude names '{setting.Path}', which is not an axis of the matrix", $"axes: {string.Join(", ", matrix.Axes.Select(a => a.Path))}"));
                continue;
            }

            var value = axis.Values.FirstOrDefault(v => setting.Value is YScalar s && (axis.Labelled ? v.Label == s.Value : ((YScalar)v.Node).Value == s.Value));
            if (value is null)
            {
                diagnostics.Add(new Diagnostic(setting.Value.Location, DiagnosticCode.InvalidValue, "matrix.exclude",
                    $"excludes nothing: {ValueText(setting.Value)} is not {(axis.Labelled ? "a label" : "a value")} of axis '{axis.Path}'",
                    $"{(axis.Labelled ? "labels" : "values")}: {string.Join(", ", axis.Values.Select(v => axis.Labelled ? v.Label : ((YScalar)v.Node).Value))}"));
                continue;
            }

            conditions.Add((axis.Path, value.Label));
        }

        return values => conditions.All(c => values.Any(v => v.Path == c.Path && v.Label == c.Label));
    }

    private static List<AxisAssignment>? IncludeValues(MatrixDefinition matrix, MatrixEntry entry, List<Diagnostic> diagnostics)
    {
        var values = new List<AxisAssignment>();
        foreach (var setting in entry.Settings)
        {
            var axis = matrix.Axes.FirstOrDefault(a => a.Path == setting.Path);
            if (axis is { Labelled: true } && setting.Value is YScalar label && axis.Values.FirstOrDefault(v => v.Label == label.Value) is { } labelled)
            {
                values.Add(new AxisAssignment(setting.Path, labelled.Label, labelled.Node, setting.Value.Location));
                continue;
            }

            var slug = setting.Value is YScalar { IsNull: false } s ? MatrixParser.Slug(s.Value) : "";
            if (slug.Length == 0)
            {
                diagnostics.Add(new Diagnostic(setting.Value.Location, DiagnosticCode.WrongType, "matrix.include",
                    $"include value for '{setting.Path}' must be {(axis is { Labelled: true } ? "a label of that axis or " : "")}a plain value that gives a name",
                    axis is { Labelled: true } ? $"labels: {string.Join(", ", axis.Values.Select(v => v.Label))}" : "give the section a label by making it an axis"));
                continue;
            }

            values.Add(new AxisAssignment(setting.Path, slug, setting.Value));
        }

        for (var i = 0; i < values.Count; i++)
        {
            if (values.Skip(i + 1).FirstOrDefault(v => SpecPaths.Overlap(v.Path, values[i].Path)) is { } other)
            {
                diagnostics.Add(new Diagnostic(entry.Location, DiagnosticCode.InvalidValue, "matrix.include",
                    $"include entry sets both '{values[i].Path}' and '{other.Path}'", "set a section or a value inside it, not both"));
                return null;
            }
        }

        return values.Count == entry.Settings.Count ? values : null;
    }

    /// <summary>Derived names: the template with each {path} replaced, or the file's name and the labels in path order.</summary>
    private static List<(string Name, Candidate Candidate)>? Name(MatrixDefinition matrix, List<Candidate> candidates, string baseName, List<Diagnostic> diagnostics)
    {
        var before = diagnostics.Count;
        var result = new List<(string, Candidate)>();
        if (matrix.NameTemplate is { } template)
        {
            foreach (Match m in MatrixParser.Placeholder().Matches(template.Value))
            {
                var path = m.Groups[1].Value.Trim();
                if (path != "name" && matrix.Axes.All(a => a.Path != path) && matrix.Include.All(e => e.Settings.All(s => s.Path != path)))
                {
                    diagnostics.Add(new Diagnostic(template.Location, DiagnosticCode.InvalidValue, "matrix.name",
                        $"'{{{path}}}' in the name template is not an axis of the matrix", $"placeholders: {string.Join(", ", matrix.Axes.Select(a => $"{{{a.Path}}}").Prepend("{name}"))}"));
                }
            }

            if (diagnostics.Count > before)
            {
                return null;
            }
        }

        foreach (var candidate in candidates)
        {
            string name;
            if (matrix.NameTemplate is { } t)
            {
                var missing = new List<string>();
                name = MatrixParser.Placeholder().Replace(t.Value, m =>
                {
                    var path = m.Groups[1].Value.Trim();
                    if (path == "name")
                    {
                        return baseName;
                    }

                    var value = candidate.Values.FirstOrDefault(v => v.Path == path);
                    if (value is null)
                    {
                        missing.Add(path);
                    }

                    return value?.Label ?? "";
                });
                if (missing.Count > 0)
                {
                    diagnostics.Add(new Diagnostic(candidate.Origin, DiagnosticCode.MissingKey, "matrix.include",
                        $"this include entry does not set '{missing[0]}', which the name template '{t.Value}' uses", $"add {missing[0]}: to the entry"));
                    continue;
                }
            }
            else
            {
                name = string.Join('-', candidate.Values.OrderBy(v => v.Path, StringComparer.Ordinal).Select(v => v.Label).Prepend(baseName));
            }

            // A bad name is the template's fault, or else the longest label's: report it there, once.
            var at = matrix.NameTemplate?.Location
                     ?? candidate.Values.OrderByDescending(v => v.Label.Length).Select(v => v.LabelAt ?? v.Node.Location).FirstOrDefault(candidate.Origin);
            if (!NamePattern.IsMatch(name))
            {
                if (diagnostics.Skip(before).All(d => d.Location != at))
                {
                    diagnostics.Add(new Diagnostic(at, DiagnosticCode.InvalidValue, "matrix.name",
                        $"variant name '{name}' ({Describe(candidate.Values)}) is not a valid experiment name: 3-63 lower-case letters, digits and '-'",
                        name.Length > 63 ? "use shorter labels, or a shorter matrix.name template" : "set matrix.name to a template such as \"{name}-{path.of.axis}\""));
                }

                continue;
            }

            if (result.FirstOrDefault(r => r.Item1 == name) is { Item1: not null } twin)
            {
                diagnostics.Add(new Diagnostic(at, DiagnosticCode.DuplicateKey, "matrix.name",
                    $"two variants would be named '{name}': {Describe(twin.Item2.Values)} and {Describe(candidate.Values)}",
                    "give the values distinct labels, or put every axis in matrix.name"));
                continue;
            }

            result.Add((name, candidate));
        }

        return diagnostics.Count > before ? null : result;
    }

    /// <summary>Two variants that would compute the same thing and show the same settings are a mistake in the matrix.</summary>
    private static void RefuseIdentical(MatrixDefinition matrix, List<SweepVariant> variants, List<Diagnostic> diagnostics)
    {
        var seen = new Dictionary<string, SweepVariant>(StringComparer.Ordinal);
        foreach (var v in variants)
        {
            var settings = CanonicalForm.ToParameterJson(v.Spec with { Name = "x" });
            if (seen.TryGetValue(settings, out var first))
            {
                diagnostics.Add(new Diagnostic(matrix.Key.Location, DiagnosticCode.InvalidValue, MatrixParser.Key,
                    $"variants '{first.Name}' and '{v.Name}' are the same experiment ({first.Describe()} vs {v.Describe()}): they would run the same thing twice",
                    "remove one of the values"));
            }
            else
            {
                seen[settings] = v;
            }
        }
    }

    /// <summary>An error a variant's values caused elsewhere in the file, moved to the value whose path is closest to it.</summary>
    private static Diagnostic MoveToValue(Diagnostic d, IReadOnlyList<AxisAssignment> values)
    {
        if (values.Count == 0)
        {
            return d;
        }

        var value = values.OrderByDescending(v => SpecPaths.CommonSegments(v.Path, d.Path)).First();
        var where = d.Location.Line > 0 ? $"the setting it conflicts with is at line {d.Location.Line}:{d.Location.Column}" : null;
        var hint = (d.Hint, where) switch
        {
            (null, null) => null,
            (null, _) => where,
            (_, null) => d.Hint,
            _ => $"{d.Hint}; {where}",
        };
        return d with { Location = value.Node.Location, Hint = hint };
    }

    /// <summary>The base tree with <paramref name="value"/> at the path; missing sections are created (at the matrix's position).</summary>
    private static YMapping SetPath(YMapping mapping, IReadOnlyList<string> path, YNode value, SourceLocation created)
    {
        var key = path[0];
        var index = -1;
        for (var i = 0; i < mapping.Entries.Count; i++)
        {
            if (mapping.Entries[i].Key.Value == key)
            {
                index = i;
            }
        }

        YNode replacement;
        if (path.Count == 1)
        {
            replacement = value;
        }
        else
        {
            var inner = index >= 0 && mapping.Entries[index].Value is YMapping m ? m : new YMapping(created, []);
            replacement = SetPath(inner, path.Skip(1).ToList(), value, created);
        }

        var entries = mapping.Entries.ToList();
        if (index >= 0)
        {
            entries[index] = entries[index] with { Value = replacement };
        }
        else
        {
            entries.Add(new YEntry(new YScalar(created, key, Plain: true), replacement));
        }

        return mapping with { Entries = entries };
    }

    private static IEnumerable<SourceLocation> Locations(YNode node) => node switch
    {
        YMapping m => m.Entries.SelectMany(e => Locations(e.Value).Prepend(e.Key.Location)).Prepend(m.Location),
        YSequence s => s.Items.SelectMany(Locations).Prepend(s.Location),
        _ => [node.Location],
    };

    private static string ValueText(YNode node) => node is YScalar s ? $"'{s.Value}'" : "a section";
}
