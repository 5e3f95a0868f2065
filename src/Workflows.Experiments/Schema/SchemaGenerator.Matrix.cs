using System.Text.Json.Nodes;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Schema;

// The schema of `matrix:` (a sweep file): one property per schema path an axis can take, each typed like the field it
// varies, so an editor completes axis paths and checks their values. Rules beyond JSON Schema (names, excludes that
// match nothing, the variant limit, each variant's own validation) are wf validate's.
public static partial class SchemaGenerator
{
    /// <summary>Every dotted path a matrix axis can name, in schema order (sections and the values inside them).</summary>
    public static IReadOnlyList<(string Path, FieldModel Field)> AxisPaths()
    {
        var paths = new List<(string, FieldModel)>();
        void Walk(Type type, string prefix)
        {
            foreach (var field in SpecModel.Record(type).Fields)
            {
                var path = prefix + field.Key;
                if (path == "name")
                {
                    continue;
                }

                paths.Add((path, field));
                if (SpecModel.IsRecord(field.Type))
                {
                    Walk(field.Type, path + ".");
                }
            }
        }

        Walk(typeof(ExperimentSpec), "");
        return paths;
    }

    private static JsonObject MatrixSchema(SortedDictionary<string, JsonNode> definitions)
    {
        var label = new JsonObject { ["type"] = "string", ["pattern"] = MatrixParser.LabelPattern().ToString() };
        var paths = AxisPaths();
        var properties = new JsonObject
        {
            ["name"] = new JsonObject
            {
                ["type"] = "string",
                ["description"] = "Template of the variants' names: each {path} is replaced by the variant's label for that axis, {name} by the file's name. Default: the file's name and the labels in path order, joined by '-'.",
            },
            ["exclude"] = Entries("Combinations to drop: each entry names axes and a value (or label) of each; a combination matching all of them is dropped."),
            ["include"] = Entries("Extra variants: each entry sets paths (any schema field; a label for a labelled axis) over the file as written."),
        };
        foreach (var (path, field) in paths)
        {
            var value = FieldSchema(field.Type, field, definitions);
            var labelled = new JsonObject
            {
                ["type"] = "object",
                ["minProperties"] = 1,
                ["propertyNames"] = label.DeepClone(),
                ["additionalProperties"] = value.DeepClone(),
            };
            var scalar = !SpecModel.IsRecord(field.Type) && field.ElementType is null && field.Type != typeof(MixSpec);
            var doc = $"Axis over '{path}': " + (scalar
                ? "a list of values (each value as written becomes the variant's label), or a mapping of label to value."
                : "a mapping of label to value (a section or a list needs a label to name its variant).")
                + (field.Doc is null ? "" : " " + field.Doc);
            properties[path] = scalar
                ? new JsonObject
                {
                    ["description"] = doc,
                    ["oneOf"] = new JsonArray(new JsonObject { ["type"] = "array", ["minItems"] = 1, ["items"] = value }, labelled),
                }
                : new JsonObject { ["description"] = doc, ["type"] = "object", ["minProperties"] = 1, ["propertyNames"] = label.DeepClone(), ["additionalProperties"] = value };
        }

        definitions["MatrixPath"] = new JsonObject
        {
            ["description"] = "A dotted schema path, e.g. data.upsampling.mode.",
            ["enum"] = new JsonArray([.. paths.Select(p => (JsonNode?)JsonValue.Create(p.Path))]),
        };
        return new JsonObject
        {
            ["description"] = $"Makes this file a sweep: one experiment per combination of the axes' values (at most {MatrixExpander.MaxVariants}), each with a derived name and its own content hash. Keys are schema paths (data.upsampling.mode, training.lr, ...); values a list, or a mapping of label to value.",
            ["type"] = "object",
            ["minProperties"] = 1,
            ["additionalProperties"] = false,
            ["properties"] = properties,
        };
    }

    private static JsonObject Entries(string description) => new()
    {
        ["description"] = description,
        ["type"] = "array",
        ["items"] = new JsonObject
        {
            ["type"] = "object",
            ["minProperties"] = 1,
            ["propertyNames"] = new JsonObject { ["$ref"] = "#/$defs/MatrixPath" },
        },
    };
}
