using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Tests;

/// <summary>
/// Mutations of the shipped experiment files (insertions of YAML punctuation, deletions, truncations): whatever the
/// input, the located reader returns diagnostics, never an exception, and every diagnostic has a line and a column.
/// Found this way (and fixed): an unclosed flow mapping followed by a plain scalar on the next line made YamlDotNet
/// throw InvalidOperationException ("Operation is not valid due to the current state of the object"), and a document
/// end marker followed by content threw "The scanner should contain no more tokens".
/// </summary>
public sealed class YamlReaderFuzzTests
{
    private static readonly string[] Tokens =
    [
        "{", "}", "[", "]", ":", ",", "-", "?", "&a", "*a", "!", "!!str ", "|", ">", "'", "\"", "#", "\n", "  ", "\t", "%YAML 1.2\n",
        "---\n", "...\n", "@", "`", "\\", "\r", "\u00a0", "\ufeff", "key: ", "- ", "{a: ", "[a, ", "\u001b", "\u202e",
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void No_mutation_of_an_experiment_escapes_the_reader_unlocated(int seed)
    {
        var sources = Directory.GetFiles(RepoPaths.Experiments, "*.yaml").Select(File.ReadAllText)
            .Append("name: x\nmodel: { base: tiny\ndata: {token_budget: 1M}\n").ToList();
        var random = new Random(seed);
        var failures = new List<string>();
        for (var i = 0; i < 2500; i++)
        {
            var text = sources[random.Next(sources.Count)].ToList();
            for (var edits = random.Next(1, 6); edits > 0; edits--)
            {
                var at = random.Next(text.Count + 1);
                switch (random.Next(3))
                {
                    case 0:
                        text.InsertRange(at, Tokens[random.Next(Tokens.Length)]);
                        break;
                    case 1 when at < text.Count:
                        text.RemoveRange(at, Math.Min(random.Next(1, 20), text.Count - at));
                        break;
                    default:
                        text.RemoveRange(at, text.Count - at);
                        break;
                }
            }

            var yaml = new string([.. text]);
            try
            {
                var result = ExperimentLoader.LoadText("fuzz.yaml", yaml);
                failures.AddRange(result.Diagnostics.Where(d => d.Location.Line < 1 || d.Location.Column < 1)
                    .Select(d => $"unlocated {d} for {System.Text.Json.JsonSerializer.Serialize(yaml)}"));
            }
            catch (Exception e)
            {
                failures.Add($"{e.GetType().Name}: {e.Message} for {System.Text.Json.JsonSerializer.Serialize(yaml)}");
            }
        }

        failures.Should().BeEmpty();
    }

    [Theory]
    [InlineData("name: x\nmodel: { base: tiny\ndata: {token_budget: 1M}\n", 2, 8, "flow mapping '{' opened here is not closed")]
    [InlineData("name: x\nmodel: [tiny\ndata: 1\n", 2, 8, "flow sequence '[' opened here is not closed")]
    [InlineData("...\nnam\ufeffe: x\nmodel: { ...\nbase: tiny\ndata", 1, 1, "YAML syntax error")]
    public void The_inputs_that_used_to_throw_are_located(string yaml, int line, int column, string message)
    {
        var result = YamlTreeReader.ReadText("f.yaml", yaml);

        var d = result.Diagnostics.Should().ContainSingle().Which;
        d.Code.Should().Be(DiagnosticCode.YamlSyntax);
        (d.Location.Line, d.Location.Column).Should().Be((line, column));
        d.Message.Should().Contain(message);
    }
}
