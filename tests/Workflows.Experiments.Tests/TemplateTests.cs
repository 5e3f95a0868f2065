using Workflows.Experiments.Matrix;
using Workflows.Experiments.Spec;
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
            with: { corpus: "${data.corpus}", paths: "${data.paths}", mix: "${data.mix}", upsampling: "${data.upsampling}",
                    token_budget: "${data.token_budget}", context: "${data.context}", seed: "${data.seed}", tokenizer: "${data.tokenizer}",
                    budget_rule: "${data.budget_rule}" }
          - id: b
            type: train
            needs: [a]
            with: { model: "${model}", training: "${training}", context: "${data.context}", token_budget: "${data.token_budget}",
                    seed: "${data.seed}", tokenizer: "${data.tokenizer}", resources: "${resources}" }
          - id: c
            type: evaluate-needle
            needs: [b]
            with: { experiment: "${name}", needle: "${evaluation.needle}", tokenizer: "${data.tokenizer}", training_context: "${data.context}" }
          - id: d
            type: report
            needs: [c]
            with: { experiment: "${name}", baseline: "${gitops.baseline}", model: "${model.base}", scorer: "${evaluation.needle.scorer}",
                    training_context: "${data.context}", token_budget: "${data.token_budget}" }
        """;

    [Fact]
    public void The_shipped_template_is_valid_and_binds_every_step_to_its_typed_parameters()
    {
        var template = TemplateLoader.LoadFile(Path.Combine(RepoPaths.Workflows, "continual-pretraining.yaml"));
        template.Diagnostics.Should().BeEmpty();
        var spec = ExperimentLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "per-source-5b-80k.yaml")).Require();

        var bound = TemplateLoader.Bind(template.Template!, spec);

        bound.Steps.Select(s => s.Id).Should().Equal("prepare-data", "train", "evaluate-needle", "evaluate-domain-loss", "report");
        var prep = bound.Steps[0];
        prep.FanOutCount.Should().Be(64);
        var data = StepParameters.Bind<PrepareDataParameters>(prep.Parameters, "t");
        data.TokenBudget.Should().Be(5_000_000_000);
        data.Context.Should().Be(81920);
        data.Tokenizer.Should().Be("llama-2");
        data.Upsampling.Mode.Should().Be(UpsamplingMode.PerSource);
        prep.MaxAttempts.Should().Be(4);
        prep.Backoff.Should().Be(TimeSpan.FromSeconds(10));
        var train = StepParameters.Bind<TrainParameters>(bound.Steps.Single(s => s.Id == "train").Parameters, "t");
        train.Model.Should().Be(spec.Model);
        train.Training.Should().Be(spec.Training);
        train.Seed.Should().Be(spec.Data.Seed);
        bound.Steps.Single(s => s.Id == "train").Timeout.Should().Be(TimeSpan.FromDays(14));
        StepParameters.Bind<ReportParameters>(bound.Steps.Single(s => s.Id == "report").Parameters, "t").Baseline.Should().Be("original-5b-80k");
    }

    [Fact]
    public void Every_experiment_binds_and_each_steps_parameters_survive_the_round_trip_through_their_record()
    {
        var template = TemplateLoader.LoadFile(Path.Combine(RepoPaths.Workflows, "continual-pretraining.yaml")).Template!;
        foreach (var (name, spec) in EveryExperiment())
        {
            var bound = TemplateLoader.Bind(template, spec);
            foreach (var step in bound.Steps)
            {
                var contract = StepContracts.Find(step.Type)!;
                var record = (IStepParameters)StepParameters.Bind(contract.Parameters, step.Parameters, step.Id);
                StepParameters.ToJson(record).Should().Be(step.Parameters, $"{name} step {step.Id}");
            }
        }
    }

    [Fact]
    public void The_commands_read_the_same_parameters_of_an_experiment_as_the_template_binds_for_the_engine()
    {
        var template = TemplateLoader.LoadFile(Path.Combine(RepoPaths.Workflows, "continual-pretraining.yaml")).Template!;
        foreach (var (name, spec) in EveryExperiment())
        {
            var bound = TemplateLoader.Bind(template, spec).Steps.ToDictionary(s => s.Type, s => s.Parameters);
            StepParameters.ToJson(PrepareDataParameters.From(spec)).Should().Be(bound["prepare-data"], name);
            StepParameters.ToJson(NeedleParameters.From(spec)).Should().Be(bound["evaluate-needle"], name);
            StepParameters.ToJson(DomainLossParameters.From(spec)).Should().Be(bound["evaluate-domain-loss"], name);
            StepParameters.ToJson(ReportParameters.From(spec)).Should().Be(bound["report"], name);
        }
    }

    /// <summary>Every experiment of experiments/: each file, a sweep file as each of its variants.</summary>
    private static IEnumerable<(string Name, ExperimentSpec Spec)> EveryExperiment() =>
        Directory.GetFiles(RepoPaths.Experiments, "*.yaml").SelectMany(file =>
            SweepLoader.LoadFile(file).Require().Select(v => ($"{Path.GetFileName(file)} ({v.Name})", v.Spec)));

    [Fact]
    public void Gpu_steps_come_from_the_step_types_not_the_template()
    {
        StepContracts.All.Where(c => c.Gpu).Select(c => c.Type).Should().Equal("train", "evaluate-needle", "evaluate-domain-loss");
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("    needs: [a]\n", "    needs: [a]\n    gpu: true\n", StringComparison.Ordinal));

        var d = result.Diagnostics.Should().ContainSingle().Which;
        d.Code.Should().Be(DiagnosticCode.UnknownKey);
        d.Hint.Should().Contain("StepContracts.cs");
    }

    [Fact]
    public void A_with_block_must_bind_every_parameter_of_the_step_type_and_nothing_else()
    {
        var train = Valid.IndexOf("model: \"${model}\"", StringComparison.Ordinal);
        var seed = Valid.IndexOf("seed: \"${data.seed}\", ", train, StringComparison.Ordinal);
        var missing = TemplateLoader.LoadText("t.yaml", Valid.Remove(seed, "seed: \"${data.seed}\", ".Length));
        missing.Diagnostics.Should().ContainSingle().Which.Message.Should().Contain("reads 'seed'");

        var extra = TemplateLoader.LoadText("t.yaml", Valid.Replace("training_context: \"${data.context}\" }", "training_context: \"${data.context}\", lr: \"${training.lr}\" }", StringComparison.Ordinal));
        extra.Diagnostics.Should().ContainSingle().Which.Message.Should().Contain("has no parameter 'lr'");

        var wrongType = TemplateLoader.LoadText("t.yaml", Valid.Replace("training_context: \"${data.context}\" }", "training_context: \"${data.tokenizer}\" }", StringComparison.Ordinal));
        wrongType.Diagnostics.Should().ContainSingle().Which.Code.Should().Be(DiagnosticCode.WrongType);
    }

    [Fact]
    public void Needs_must_provide_each_input_the_step_type_reads()
    {
        var result = TemplateLoader.LoadText("t.yaml", Valid.Replace("needs: [c]", "needs: [b]", StringComparison.Ordinal));

        result.Diagnostics.Select(d => d.Message).Should().Contain(m => m.Contains("reads the output of a 'evaluate-needle' step", StringComparison.Ordinal))
            .And.Contain(m => m.Contains("does not read its output", StringComparison.Ordinal));
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
        d.Location.Line.Should().Be(Valid.Split('\n').ToList().FindIndex(l => l.Contains("type: train", StringComparison.Ordinal)) + 1);
    }

    [Fact]
    public void Unbound_parameters_are_errors()
    {
        var at = Valid.IndexOf("${data.token_budget}", StringComparison.Ordinal);
        var result = TemplateLoader.LoadText("t.yaml", Valid[..at] + "${data.token_budgte}" + Valid[(at + "${data.token_budget}".Length)..]);

        var d = result.Diagnostics.Should().ContainSingle().Which;
        d.Code.Should().Be(DiagnosticCode.UnboundParameter);
        d.Message.Should().Contain("data.token_budgte");
        d.Location.Line.Should().Be(7, "the prepare-data step's with: starts on line 7");
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
