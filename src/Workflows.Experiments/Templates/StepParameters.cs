using System.Text.Json;
using System.Text.Json.Nodes;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Templates;

/// <summary>
/// A step's parameters travel as canonical JSON (keys sorted, defaults written: <see cref="CanonicalForm.ToJson(object)"/>)
/// and are bound back into the step type's record by the same binder that reads experiment files, so a handler sees
/// typed values and the cache key hashes exactly the JSON the handler was built from.
/// </summary>
public static class StepParameters
{
    /// <summary>Binds parameter JSON into <typeparamref name="T"/>; <see cref="InvalidDataException"/> lists every problem.</summary>
    public static T Bind<T>(string json, string where)
        where T : class => (T)Bind(typeof(T), json, where);

    public static object Bind(Type type, string json, string where)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: the step's parameters are not JSON: {e.Message}", e);
        }

        var binder = new SpecBinder(where);
        var record = binder.Bind(type, ToYaml(node, new SourceLocation(where, 1, 1)));
        return record is not null && binder.Diagnostics.Count == 0
            ? record
            : throw new InvalidDataException($"{where}: the parameters do not fit {type.Name}: {string.Join("; ", binder.Diagnostics.Select(d => $"{d.Path}: {d.Message}"))}");
    }

    /// <summary>The canonical JSON of a parameters record: what <see cref="Bind"/> reads and step keys hash.</summary>
    public static string ToJson(IStepParameters parameters) => CanonicalForm.ToJson(parameters);

    /// <summary>JSON as the located YAML tree the binder reads (JSON is YAML; strings stay quoted, so "true" stays a string).</summary>
    private static YNode ToYaml(JsonNode? node, SourceLocation at) => node switch
    {
        null => new YScalar(at, "null", Plain: true),
        JsonObject o => new YMapping(at, [.. o.Select(p => new YEntry(new YScalar(at, p.Key, Plain: true), ToYaml(p.Value, at)))]),
        JsonArray a => new YSequence(at, [.. a.Select(i => ToYaml(i, at))]),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => new YScalar(at, v.GetValue<string>(), Plain: false),
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False =>
            new YScalar(at, v.GetValueKind() == JsonValueKind.True ? "true" : "false", Plain: true),
        _ => new YScalar(at, node.ToJsonString(), Plain: true),
    };
}
