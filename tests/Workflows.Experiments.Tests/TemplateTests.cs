using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class TemplateTests
{
    private const string Valid = """
        name: t
        steps:
          - id: a
            type: prepare-data
            fan_out: { over: shards, count: "${data.shards}" }
            with: { budget: "${data.token_budget}" }
          - id: b
            type: train
            needs: [a]
          - id: c
            type: report
            needs: [b]
        """;

    [Fact]
    public void The_shipped_template_is_valid_and_binds_to_an_experiment()
    {
        var template = TemplateLoader.LoadFile(Path.Combine(RepoPaths.Workflows, "continual-pretraining.yaml"));
        template.Diagnostics.Should().BeEmpty();
        var spec = ExperimentLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "per-source-5b-80k.yaml")).Require();

        var bound = TemplateLoader.Bind(template.Template!, spec);

        bound.Steps.Select(s => s.Id).Should().Equal("prepare-data", "train", "evaluate-needle", "evaluate-domain-loss", "report");
        var prep = bound.Steps[0];
        prep.FanOutCount.Should().Be(64);
        prep.Parameters["token_budget"].Should().Be("5000000000");
        prep.Parameters["context"].Should().Be("81920");
        prep.Parameters["tokenizer"].Should().Be("llama-2");
        prep.MaxAttempts.Should().Be(4);
        prep.Backoff.Should().Be(TimeSpan.FromSeconds(10));
        bound.Steps.Single(s => s.Id == "train").Gpu.Should().BeTrue();
        bound.Steps.Single(s => s.Id == "train").Timeout.Should().Be(TimeSpan.FromDays(14));
        bound.Steps.Single(s => s.Id == "report").Parameters["baseline"].Should().Be("original-5b-80k");
    }

    [Fact]
    public void A_valid_template_loads() => TemplateLoader.LoadText("t.yaml", Valid).Diagnostics.Should().BeEmpty();

    [Fact]
    public void Cycles_are_errors()
    {
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("    type: prepare-data\n", "    type: prepare-data\n    needs: [c]\n", StringComparison.Ordinal));

        result.Diagnostics.Should().ContainSingle().Which.Should().Match<Diagnostic>(d => d.Code == DiagnosticCode.Cycle && d.Message.Contains("a -> c -> b -> a", StringComparison.Ordinal) || d.Message.Contains("-> a", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_step_types_are_errors_with_a_suggestion()
    {
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("type: train", "type: trian", StringComparison.Ordinal));

        var d = result.Diagnostics.Should().ContainSingle().Which;
        d.Code.Should().Be(DiagnosticCode.UnknownStepType);
        d.Hint.Should().Contain("did you mean 'train'");
        d.Location.Line.Should().Be(8);
    }

    [Fact]
    public void Unbound_parameters_are_errors()
    {
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("${data.token_budget}", "${data.token_budgte}", StringComparison.Ordinal));

        var d = result.Diagnostics.Should().ContainSingle().Which;
        d.Code.Should().Be(DiagnosticCode.UnboundParameter);
        d.Message.Should().Contain("data.token_budgte");
        d.Location.Line.Should().Be(6);
    }

    [Fact]
    public void Unknown_dependencies_are_errors()
    {
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("needs: [b]", "needs: [bb]", StringComparison.Ordinal));

        result.Diagnostics.Should().ContainSingle().Which.Code.Should().Be(DiagnosticCode.UnknownDependency);
    }

    [Fact]
    public void Bad_durations_and_fan_out_kinds_are_errors()
    {
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("over: shards", "over: files", StringComparison.Ordinal) + "\n    timeout: soon\n");

        result.Diagnostics.Select(d => d.Code).Should().BeEquivalentTo([DiagnosticCode.InvalidValue, DiagnosticCode.InvalidValue]);
    }
}
