using System.Globalization;
using System.Text.Json.Nodes;
using Json.Schema;
using Workflows.Experiments.Schema;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Tests;

public sealed class SchemaTests
{
    private static readonly string CheckedIn = Path.Combine(RepoPaths.Experiments, "schema.json");

    // The validator keeps a global registry keyed by $id: build the schema once per test run.
    private static readonly Lazy<JsonSchema> Parsed = new(() => JsonSchema.FromText(File.ReadAllText(CheckedIn)));

    [Fact]
    public void Checked_in_schema_matches_the_model()
    {
        File.ReadAllText(CheckedIn).Should().Be(SchemaGenerator.Generate(),
            "experiments/schema.json must be regenerated after changing the spec: dotnet run --project src/Workflows.Cli -- schema --out experiments/schema.json");
    }

    [Fact]
    public void Every_example_starts_with_the_language_server_comment()
    {
        foreach (var file in Directory.GetFiles(RepoPaths.Experiments, "*.yaml"))
        {
            File.ReadLines(file).First().Should().Be("# yaml-language-server: $schema=./schema.json", file);
        }
    }

    public static TheoryData<string> Examples()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(RepoPaths.Experiments, "*.yaml").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    /// <summary>What an editor does: validate the YAML (as JSON) against schema.json with an independent validator.</summary>
    [Theory]
    [MemberData(nameof(Examples))]
    public void Examples_validate_against_the_schema_as_an_editor_would(string name)
    {
        var schema = Parsed.Value;
        var instance = System.Text.Json.JsonDocument.Parse(ToJson(YamlTreeReader.ReadFile(Path.Combine(RepoPaths.Experiments, name)).Root!)!.ToJsonString()).RootElement;

        var result = schema.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List });

        result.IsValid.Should().BeTrue(string.Join("; ", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))));
    }

    [Fact]
    public void The_schema_rejects_an_unknown_key_and_a_bad_enum()
    {
        var schema = Parsed.Value;
        var yaml = "name: abc\nmodel: { base: tiny }\ndata: { token_budget: 1M, context: 1K, upsampling: { mode: sideways } }\ncolour: red\n";
        var instance = System.Text.Json.JsonDocument.Parse(ToJson(YamlTreeReader.ReadText("x.yaml", yaml).Root!)!.ToJsonString()).RootElement;

        schema.Evaluate(instance).IsValid.Should().BeFalse();
    }

    [Theory]
    [InlineData("matrix: { data.upsampling.mode: [none, sideways] }")]
    [InlineData("matrix: { data.upsampling.mdoe: [none] }")]
    [InlineData("matrix: { data.upsampling: [{ mode: none }] }")]
    [InlineData("matrix: { training.lr: { Low: 1e-5 } }")]
    [InlineData("matrix: { training.lr: [1e-5], exclude: [{ training.rate: 1e-5 }] }")]
    public void The_schema_rejects_a_malformed_matrix_as_an_editor_would(string matrix)
    {
        var yaml = "name: abc\nmodel: { base: tiny }\ndata: { token_budget: 1M, context: 1K }\n" + matrix + "\n";
        var instance = System.Text.Json.JsonDocument.Parse(ToJson(YamlTreeReader.ReadText("x.yaml", yaml).Root!)!.ToJsonString()).RootElement;

        Parsed.Value.Evaluate(instance).IsValid.Should().BeFalse();
    }

    [Fact]
    public void The_schema_accepts_a_matrix_with_labels_include_exclude_and_a_name_template()
    {
        var yaml = """
            name: abc
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K }
            matrix:
              name: "{name}-{training.lr}"
              training.lr: { low: 1e-5, high: 2e-5 }
              data.upsampling: { plain: { mode: none }, ps: { mode: per-source, short_keep_ratio: 0.1 } }
              exclude: [{ training.lr: high, data.upsampling: plain }]
              include: [{ training.lr: 3e-5 }]
            """;
        var instance = System.Text.Json.JsonDocument.Parse(ToJson(YamlTreeReader.ReadText("x.yaml", yaml).Root!)!.ToJsonString()).RootElement;

        Parsed.Value.Evaluate(instance).IsValid.Should().BeTrue();
    }

    private static JsonNode? ToJson(YNode node) => node switch
    {
        YMapping m => new JsonObject(m.Entries.Select(e => KeyValuePair.Create(e.Key.Value, ToJson(e.Value)))),
        YSequence s => new JsonArray(s.Items.Select(ToJson).ToArray()),
        YScalar { IsNull: true } => null,
        YScalar { Plain: true, Value: "true" } => JsonValue.Create(true),
        YScalar { Plain: true, Value: "false" } => JsonValue.Create(false),
        YScalar { Plain: true } s when long.TryParse(s.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
        YScalar { Plain: true } s when double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
        YScalar s => JsonValue.Create(s.Value),
        _ => throw new InvalidOperationException(),
    };
}
