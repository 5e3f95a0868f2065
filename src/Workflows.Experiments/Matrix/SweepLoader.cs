using Workflows.Experiments.Paths;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Matrix;

/// <summary>The value a variant takes for one path: the axis value's label (or the value as written), its YAML, and where the label is written.</summary>
public sealed record AxisAssignment(string Path, string Label, YNode Node, SourceLocation? LabelAt = null);

/// <summary>
/// One experiment of a sweep file: its derived name, the spec (name set to that name), its own canonical hash, the
/// values that make it this variant, and the standalone experiment YAML a run records (for exact reruns).
/// </summary>
public sealed record SweepVariant(int Index, string Name, ExperimentSpec Spec, string ContentHash, IReadOnlyList<AxisAssignment> Values, string Yaml)
{
    /// <summary><c>data.upsampling.mode = none, training.lr = lr-low</c>.</summary>
    public string Describe() => Values.Count == 0 ? "(the file as written)" : string.Join(", ", Values.Select(v => $"{v.Path} = {v.Label}"));

    /// <summary>Path → label, in the order the variant was defined.</summary>
    public IReadOnlyDictionary<string, string> ValueLabels() => Values.ToDictionary(v => v.Path, v => v.Label, StringComparer.Ordinal);
}

/// <summary>
/// An experiment file read as a set of experiments: a plain file is one variant (its own name, no axis values), a
/// sweep file (with <c>matrix:</c>) one per combination. <see cref="Name"/> is the file's own <c>name:</c>.
/// </summary>
public sealed record SweepLoadResult(string File, string? Name, bool IsMatrix, IReadOnlyList<SweepVariant> Variants, IReadOnlyList<Diagnostic> Diagnostics)
{
    public bool IsValid => Diagnostics.Count == 0 && Variants.Count > 0;

    public IReadOnlyList<SweepVariant> Require() => IsValid ? Variants : throw new ValidationException(Diagnostics);

    public SweepVariant? Variant(string name) => Variants.FirstOrDefault(v => v.Name == name);
}

/// <summary>Loads experiment files that may be sweeps: the entry point of the commands that expand a matrix.</summary>
public static class SweepLoader
{
    public static SweepLoadResult LoadFile(string path, LoadOptions? options = null)
    {
        var read = YamlTreeReader.ReadFile(path);
        options ??= new LoadOptions();
        // Every variant's paths are checked against the file's repository, as ExperimentLoader.LoadFile does.
        options = options with { Paths = options.Paths ?? PathPolicy.ForExperiment(path) };
        return Load(path, read, options, () => File.ReadAllText(path));
    }

    public static SweepLoadResult LoadText(string displayName, string yaml, LoadOptions? options = null) =>
        Load(displayName, YamlTreeReader.ReadText(displayName, yaml), options ?? new LoadOptions(), () => yaml);

    /// <summary>True when the file's top level has <c>matrix:</c> (read cheaply; an unreadable file is not a sweep).</summary>
    public static bool IsSweepFile(string path) => IsSweep(YamlTreeReader.ReadFile(path).Root);

    private static bool IsSweep(YNode? root) => root is YMapping m && m[MatrixParser.Key] is not null;

    private static SweepLoadResult Load(string path, YamlTreeReader.Result read, LoadOptions options, Func<string> text)
    {
        if (read.Root is YMapping root && IsSweep(root))
        {
            return MatrixExpander.Expand(path, root, read.Diagnostics, options);
        }

        var loaded = ExperimentLoader.LoadParsed(path, read, options);
        if (!loaded.IsValid)
        {
            return new SweepLoadResult(path, loaded.Spec?.Name, false, [], loaded.Diagnostics);
        }

        var spec = loaded.Spec!;
        return new SweepLoadResult(path, spec.Name, false, [new SweepVariant(1, spec.Name, spec, CanonicalForm.Hash(spec), [], text())], []);
    }
}
