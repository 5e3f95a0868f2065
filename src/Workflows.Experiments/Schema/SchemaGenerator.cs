using System.Text.Json;
using System.Text.Json.Nodes;
using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Schema;

/// <summary>
/// Generates experiments/schema.json (JSON Schema 2020-12) from the spec records, so editors with the YAML language
/// server complete keys and show the same documentation as <c>wf</c>'s errors. Size fields accept an integer or a
/// literal (<c>80K</c>); the description of each says whether its K is 1000 or 1024.
/// Cross-field rules (weights summing to 1, the repository policy) are beyond JSON Schema and are checked by
/// <c>wf validate</c>.
/// </summary>
public static partial class SchemaGenerator
{
    public const string SizePattern = @"^[0-9][0-9_]*(\.[0-9]+)?[KkMmBbGgTt]?$";

    public static string Generate()
    {
        var definitions = new SortedDictionary<string, JsonNode>(StringComparer.Ordinal);
        var root = RecordSchema(typeof(ExperimentSpec), definitions);
        root["properties"]!.AsObject()[Matrix.MatrixParser.Key] = MatrixSchema(definitions);
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema";
        root["$id"] = "https://github.com/workflows/wf/experiments/schema.json";
        root["title"] = "wf experiment";
        var defs = new JsonObject();
        foreach (var (name, schema) in definitions)
        {
            defs[name] = schema;
        }

        root["$defs"] = defs;
        var ordered = new JsonObject();
        foreach (var key in new[] { "$schema", "$id", "title", "description", "type", "additionalProperties", "required", "properties", "$defs" })
        {
            if (root[key] is { } node)
            {
                root.Remove(key);
                ordered[key] = node;
            }
        }

        return ordered.ToJsonString(new JsonSerializerOptions { WriteIndented = true }).Replace("\r\n", "\n", StringComparison.Ordinal) + "\n";
    }

    private static JsonObject RecordSchema(Type type, SortedDictionary<string, JsonNode> definitions)
    {
        var model = SpecModel.Record(type);
        var properties = new JsonObject();
        var required = new JsonArray();
        foreach (var field in model.Fields)
        {
            var schema = FieldSchema(field.Type, field, definitions);
            if (field.Doc is not null)
            {
                schema["description"] = field.Doc + SizeNote(field);
            }
            else if (field.Size is not null)
            {
                schema["description"] = SizeNote(field).TrimStart();
            }

            if (field.Parameter.HasDefaultValue && field.Parameter.DefaultValue is { } dflt)
            {
                schema["default"] = dflt switch
                {
                    Enum e => SpecModel.EnumName(e.GetType(), e),
                    bool b => b,
                    int i => i,
                    long l => l,
                    double d => d,
                    string s => s,
                    _ => null,
                };
            }

            properties[field.Key] = schema;
            if (field.Required)
            {
                required.Add(field.Key);
            }
        }

        var result = new JsonObject { ["type"] = "object", ["additionalProperties"] = false };
        if (model.Doc is not null)
        {
            result["description"] = model.Doc;
        }

        if (required.Count > 0)
        {
            result["required"] = required;
        }

        result["properties"] = properties;
        return result;
    }

    private static string SizeNote(FieldModel field) => field.Size switch
    {
        SizeBase.Decimal => " Integer, or a literal with K=10^3, M=10^6, B=10^9, T=10^12 (token counts).",
        SizeBase.Binary => " Integer, or a literal with K=1024, M=1024^2 (sequence lengths: 80K = 81920).",
        _ => "",
    };

    private static JsonObject FieldSchema(Type type, FieldModel field, SortedDictionary<string, JsonNode> definitions)
    {
        if (type == typeof(MixSpec))
        {
            var weights = new JsonObject();
            foreach (var source in SlimPajama.Sources)
            {
                weights[source.ToString()] = new JsonObject { ["type"] = "number", ["minimum"] = 0, ["maximum"] = 1 };
            }

            return new JsonObject
            {
                ["oneOf"] = new JsonArray(
                    new JsonObject { ["const"] = "natural" },
                    new JsonObject { ["type"] = "object", ["additionalProperties"] = false, ["properties"] = weights, ["minProperties"] = 1 }),
            };
        }

        if (type == typeof(LengthBucket))
        {
            return new JsonObject { ["type"] = "string", ["pattern"] = @"^[0-9]+(\.[0-9]+)?[KkMm]?-[0-9]+(\.[0-9]+)?[KkMm]?$" };
        }

        if (field.ElementType is { } element && type.IsGenericType)
        {
            return new JsonObject { ["type"] = "array", ["items"] = FieldSchema(element, field with { }, definitions) };
        }

        if (SpecModel.IsRecord(type))
        {
            if (!definitions.ContainsKey(type.Name))
            {
                definitions[type.Name] = new JsonObject();
                definitions[type.Name] = RecordSchema(type, definitions);
            }

            return new JsonObject { ["$ref"] = $"#/$defs/{type.Name}" };
        }

        if (type.IsEnum)
        {
            var values = new JsonArray();
            foreach (var (name, _) in SpecModel.EnumValues(type))
            {
                values.Add(name);
            }

            return new JsonObject { ["type"] = "string", ["enum"] = values };
        }

        JsonObject Bounded(JsonObject schema)
        {
            if (field.Bounds is { } b)
            {
                schema["minimum"] = b.Min;
                if (!double.IsPositiveInfinity(b.Max))
                {
                    schema["maximum"] = b.Max;
                }
            }

            return schema;
        }

        if (type == typeof(string))
        {
            var schema = new JsonObject { ["type"] = "string" };
            if (field.Pattern is { } p)
            {
                schema["pattern"] = p.Pattern;
            }

            return schema;
        }

        if (type == typeof(bool))
        {
            return new JsonObject { ["type"] = "boolean" };
        }

        if (type == typeof(double))
        {
            return Bounded(new JsonObject { ["type"] = "number" });
        }

        if (field.Size is not null)
        {
            return new JsonObject
            {
                ["oneOf"] = new JsonArray(
                    Bounded(new JsonObject { ["type"] = "integer" }),
                    new JsonObject { ["type"] = "string", ["pattern"] = SizePattern }),
            };
        }

        return Bounded(new JsonObject { ["type"] = "integer" });
    }
}
