using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Matrix;

/// <summary>The outcome of resolving a dotted path (<c>data.upsampling.mode</c>) against the spec's records.</summary>
/// <param name="Field">The field the path names, or null when it names none.</param>
/// <param name="Error">Why it names none (unknown key, or a key below a field that is not a section).</param>
/// <param name="Hint">A suggestion: the closest known key, or the keys known at that level.</param>
public sealed record SpecPath(string Path, FieldModel? Field, string? Error, string? Hint)
{
    public bool IsValid => Field is not null;
}

/// <summary>
/// Dotted paths over the experiment schema, as a matrix axis names them. Any field of the spec can be an axis: a
/// whole section (<c>data.upsampling</c>), or one value inside it (<c>data.upsampling.mode</c>). A path cannot go
/// inside a value that is not a section (the mix's weights, a list), and <c>name</c> cannot vary (it is derived).
/// </summary>
public static class SpecPaths
{
    public static SpecPath Resolve(string path)
    {
        var segments = path.Split('.');
        var type = typeof(ExperimentSpec);
        FieldModel? field = null;
        for (var i = 0; i < segments.Length; i++)
        {
            var so = string.Join('.', segments.Take(i));
            if (field is not null && !SpecModel.IsRecord(field.Type))
            {
                return new SpecPath(path, null, $"'{so}' is a value, not a section: an axis cannot reach inside it",
                    $"vary '{so}' as a whole");
            }

            var model = SpecModel.Record(type);
            field = model.Field(segments[i]);
            if (field is null)
            {
                var where = i == 0 ? "the experiment" : $"'{so}'";
                var suggestion = Suggest.Closest(segments[i], model.Fields.Select(f => f.Key));
                return new SpecPath(path, null, $"'{path}' is not a field of the experiment: {where} has no key '{segments[i]}'",
                    suggestion is not null
                        ? $"did you mean '{string.Join('.', segments.Take(i).Append(suggestion))}'?"
                        : $"known keys of {where}: {string.Join(", ", model.Fields.Select(f => f.Key))}");
            }

            type = field.Type;
        }

        return new SpecPath(path, field, null, null);
    }

    /// <summary>True when one path is the other or lies inside it (<c>data.upsampling</c> and <c>data.upsampling.mode</c>).</summary>
    public static bool Overlap(string a, string b) =>
        a == b || a.StartsWith(b + ".", StringComparison.Ordinal) || b.StartsWith(a + ".", StringComparison.Ordinal);

    /// <summary>How many leading segments two dotted paths share (to find the axis value behind an error).</summary>
    public static int CommonSegments(string a, string b)
    {
        // List indices (data.paths[0]) belong to their field.
        var x = Unindexed(a).Split('.');
        var y = Unindexed(b).Split('.');
        var n = 0;
        while (n < x.Length && n < y.Length && x[n] == y[n])
        {
            n++;
        }

        return n;
    }

    /// <summary>The field a path with a list index names (<c>data.paths[0]</c> → <c>data.paths</c>).</summary>
    public static string Unindexed(string path)
    {
        var bracket = path.IndexOf('[', StringComparison.Ordinal);
        return bracket < 0 ? path : path[..bracket];
    }
}
