using System.Text.Json.Nodes;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Evaluation.Reports;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Engine.Tests;

/// <summary>
/// The smoke experiment with <c>evaluation.needle.enabled: false</c> (and domain loss off) through the real
/// evaluate-needle, evaluate-domain-loss and report handlers, the evaluations on the real GPU agent. Training is the
/// test GPU step (a model file that is no model: a handler that tried to evaluate it would fail). Seconds, not minutes.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class DisabledEvaluationTests(EngineFixture engine)
{
    [Fact]
    public async Task A_disabled_needle_evaluation_resolves_no_haystack_publishes_an_empty_output_marked_disabled_and_the_report_says_so()
    {
        var smoke = Path.Combine(engine.RepositoryRoot, "experiments", "smoke.yaml");
        var yaml = File.ReadAllText(smoke)
            .Replace("\n  needle:\n", "\n  needle:\n    enabled: false\n", StringComparison.Ordinal)
            .Replace("\n  domain_loss:\n", "\n  domain_loss:\n    enabled: false\n", StringComparison.Ordinal);
        var workflows = Path.Combine(engine.RepositoryRoot, "workflows");
        var spec = ExperimentLoader.LoadText(smoke, yaml, new LoadOptions(PolicyMode.Off, workflows)).Require();
        spec.Evaluation.Needle.Enabled.Should().BeFalse("the test must run the experiment it means to");
        var bound = TemplateLoader.Bind(TemplateLoader.LoadFile(Path.Combine(workflows, "continual-pretraining.yaml")).Template!, spec);
        BoundStep Real(StepContract contract) => bound.Steps.Single(s => s.Type == contract.Type);
        var test = "n" + Guid.NewGuid().ToString("N")[..10];
        var steps = new[]
        {
            EngineFixture.Step("train", TestGpuHandler.StepType, 1, test),
            // One attempt each: an evaluation that does run fails the run at once, not after the template's retry backoff.
            Real(StepContracts.EvaluateNeedle) with { Needs = ["train"], MaxAttempts = 1 },
            Real(StepContracts.EvaluateDomainLoss) with { Needs = ["train"], MaxAttempts = 1 },
            Real(StepContracts.Report),
        };

        var view = await engine.RunAsync(new SubmitRequest(spec, yaml, new BoundWorkflow("test", 1, steps), Path.GetDirectoryName(smoke)!, "test"));

        view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
        var manifests = engine.Host.Services.Manifests;
        var needle = view.Result!.Outputs[Real(StepContracts.EvaluateNeedle).Id];
        var needleManifest = (await manifests.TryGetAsync(StepOutputs.KeyOf(needle)))!;
        needleManifest.Entries.Should().BeEmpty("nothing was evaluated");
        needleManifest.Properties.Should().Equal(new Dictionary<string, string> { [EvaluationState.Property] = EvaluationState.Disabled });
        // The key is the step's parameters and the trained model, nothing from outside the store: no haystack was read.
        var train = view.Result.Outputs["train"];
        new StepJob(view.Record.RunId, needle.Step, needle.Activity, Real(StepContracts.EvaluateNeedle).Parameters,
                new Dictionary<string, StepOutput> { [TestGpuHandler.StepType] = train }, "", External: [], "", Recompute: false)
            .ComputeKey().Hash.Should().Be(needle.KeyHash);
        var lossManifest = (await manifests.TryGetAsync(StepOutputs.KeyOf(view.Result.Outputs[Real(StepContracts.EvaluateDomainLoss).Id])))!;
        EvaluationState.IsDisabled(lossManifest.Properties).Should().BeTrue();

        var report = (await manifests.TryGetAsync(StepOutputs.KeyOf(view.Result.Outputs[Real(StepContracts.Report).Id])))!;
        report.Entries.Select(e => e.Path).Should().BeEquivalentTo([$"{ReportJobHandler.OutputFolder}/report.md", $"{ReportJobHandler.OutputFolder}/report.json"],
            "no heatmap without needle results");
        var markdown = await ReadAsync(report, "report.md");
        markdown.Should().Contain("## Needle in a haystack").And.Contain("Disabled (`evaluation.needle.enabled: false`)").And.NotContain("Mean score");
        var json = JsonNode.Parse(await ReadAsync(report, "report.json"))!;
        json["needle"]![EvaluationState.Property]!.GetValue<string>().Should().Be(EvaluationState.Disabled);
        json["needle"]!["mean"].Should().BeNull();
        json["loss"].Should().BeNull();
    }

    private async Task<string> ReadAsync(Workflows.Artifacts.ContentAddressing.Manifest manifest, string file)
    {
        await using var stream = await engine.Host.Services.Manifests.OpenVerifiedAsync(manifest, $"{ReportJobHandler.OutputFolder}/{file}");
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }
}
