using Workflows.Experiments.Matrix;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Validation;

public enum PolicyMode
{
    /// <summary>Enforce the repository policy for files inside a folder named <c>experiments</c>.</summary>
    Auto,
    Enforce,
    Off,
}

/// <param name="Paths">The path policy for a file's paths; null: <see cref="PathPolicy.ForExperiment"/> of the file
/// (its repository and WF_DATA_ROOTS). Text loaded without a file (a stored run's YAML) has no path checks.</param>
public sealed record LoadOptions(PolicyMode Policy = PolicyMode.Auto, string? WorkflowsDirectory = null, PathPolicy? Paths = null);

public sealed record LoadResult(string File, ExperimentSpec? Spec, IReadOnlyList<Diagnostic> Diagnostics)
{
    public bool IsValid => Spec is not null && Diagnostics.Count == 0;

    public ExperimentSpec Require() => IsValid ? Spec! : throw new ValidationException(Diagnostics);
}

/// <summary>
/// Reads, binds and validates an experiment file: YAML safety limits, then types and keys, then the cross-field
/// rules and the repository policy. Every error of the file is returned, sorted by position.
/// </summary>
public static class ExperimentLoader
{
    public static LoadResult LoadFile(string path, LoadOptions? options = null)
    {
        var read = YamlTreeReader.ReadFile(path);
        options ??= new LoadOptions();
        return Load(path, read, options, options.Paths ?? PathPolicy.ForExperiment(path));
    }

    public static LoadResult LoadText(string displayName, string yaml, LoadOptions? options = null) =>
        Load(displayName, YamlTreeReader.ReadText(displayName, yaml), options ?? new LoadOptions(), paths: null);

    /// <summary>Binds and checks a tree read already (a sweep file's variants are trees built from the file's). Its
    /// paths are checked only against <see cref="LoadOptions.Paths"/>: the caller that read a file sets it (see
    /// SweepLoader.LoadFile), text has no path checks, as in <see cref="LoadText"/>.</summary>
    public static LoadResult LoadParsed(string path, YamlTreeReader.Result read, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        return Load(path, read, options, options.Paths);
    }

    private static LoadResult Load(string path, YamlTreeReader.Result read, LoadOptions options, PathPolicy? paths)
    {
        var diagnostics = new List<Diagnostic>(read.Diagnostics);
        ExperimentSpec? spec = null;
        var root = read.Root;
        if (root is YMapping mapping && mapping.Entries.FirstOrDefault(e => e.Key.Value == MatrixParser.Key) is { } matrix)
        {
            // A sweep file reaches a command that takes one experiment: say so instead of "unknown key 'matrix'".
            diagnostics.Add(new Diagnostic(matrix.Key.Location, DiagnosticCode.InvalidValue, MatrixParser.Key,
                "this file is a sweep: 'matrix' expands it into several experiments, and this command takes one",
                "wf validate, plan, run, submit and compare expand the matrix; for one variant, run the commands on its own file"));
            root = mapping with { Entries = [.. mapping.Entries.Where(e => !ReferenceEquals(e, matrix))] };
        }

        if (root is not null || read.Diagnostics.Count == 0)
        {
            var binder = new SpecBinder(path);
            spec = binder.Bind<ExperimentSpec>(root);
            diagnostics.AddRange(binder.Diagnostics);
            if (spec is not null)
            {
                var enforce = options.Policy switch
                {
                    PolicyMode.Enforce => true,
                    PolicyMode.Off => false,
                    _ => IsUnderExperimentsFolder(path),
                };
                diagnostics.AddRange(SpecRules.Check(spec, path, binder.Locations, enforce, options.WorkflowsDirectory));
                if (paths is not null)
                {
                    diagnostics.AddRange(PathRules.Check(spec, path, binder.Locations, paths));
                }
            }
        }

        var sorted = diagnostics
            .OrderBy(d => d.Location.Line)
            .ThenBy(d => d.Location.Column)
            .ThenBy(d => d.Path, StringComparer.Ordinal)
            .ToList();
        return new LoadResult(path, sorted.Count == 0 ? spec : null, sorted);
    }

    public static bool IsUnderExperimentsFolder(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        while (!string.IsNullOrEmpty(directory))
        {
            if (Path.GetFileName(directory) == "experiments")
            {
                return true;
            }

            directory = Path.GetDirectoryName(directory);
        }

        return false;
    }
}
