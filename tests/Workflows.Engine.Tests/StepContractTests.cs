using System.Text.RegularExpressions;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Engine.Tests;

/// <summary>
/// Typed step contracts: one handler per step type in this build, the GPU ones (and only those) for the agent; a job
/// step's key follows every parameter its handler can read and nothing else; no step type is named in code outside
/// the contracts.
/// </summary>
public sealed class StepContractTests
{
    private static readonly string Root = ConfigurationTests.FindRepositoryRoot();

    [Fact]
    public void Every_step_type_has_its_contracts_handler_and_exactly_the_gpu_ones_go_to_the_agent()
    {
        var registry = EngineHost.DefaultSteps(new EngineServices(null!, new EngineOptions(), null!));

        registry.Types.Should().BeEquivalentTo(StepContracts.All.Select(c => c.Type));
        foreach (var contract in StepContracts.All)
        {
            registry.TryGet(contract.Type, out var handler).Should().BeTrue();
            handler.Contract.Should().BeSameAs(contract);
        }

        registry.GpuJobs.Select(j => j.Contract.Type).Should().BeEquivalentTo(["train", "evaluate-needle", "evaluate-domain-loss"]);
        registry.Jobs.Keys.Should().Contain("report", "report is a job step too, but it runs on a worker");
    }

    [Fact]
    public void A_job_steps_key_changes_with_each_parameter_its_handler_reads_and_not_with_what_it_cannot_read()
    {
        var yaml = File.ReadAllText(Path.Combine(Root, "experiments", "smoke.yaml"));
        var baseline = Keys(yaml);

        var lr = Keys(Regex.Replace(yaml, @"(?m)^(\s+)lr:.*$", "$1lr: 3.0e-4"));
        lr["train"].Should().NotBe(baseline["train"], "train reads training.lr");
        lr["evaluate-needle"].Should().Be(baseline["evaluate-needle"], "needle does not read training.lr (it reads the trained model, by its content hash)");

        var cosmetic = Keys(yaml.Replace("description:", "gitops: { owner: someone-else }\ndescription:", StringComparison.Ordinal));
        cosmetic.Should().Equal(baseline, "no step reads gitops.owner");

        var depths = Keys(Regex.Replace(yaml, @"(?m)^(\s+)depths:.*$", "$1depths: 4"));
        depths["evaluate-needle"].Should().NotBe(baseline["evaluate-needle"]);
        depths["train"].Should().Be(baseline["train"]);
        depths["evaluate-domain-loss"].Should().Be(baseline["evaluate-domain-loss"]);
    }

    [Fact]
    public void The_train_handler_builds_the_same_training_job_from_its_parameters_as_wf_train_from_the_whole_experiment()
    {
        // The handler hands ToTrainingJob only the step's parameters (the rest at defaults). If training starts to read
        // another field of the experiment, this fails until the field joins TrainParameters (and so the step's key).
        var template = TemplateLoader.LoadFile(Path.Combine(Root, "workflows", "continual-pretraining.yaml")).Template!;
        var files = Directory.GetFiles(Path.Combine(Root, "experiments"), "*.yaml");
        // Each experiment as written (a sweep file as each of its variants), and on one A100 and one H200 (where the
        // memory plan places the optimizer state differently from the default resources), so a field training reads
        // but the contract lacks shows up.
        var placements = new HashSet<Workflows.Training.Loop.OptimizerPlacement>();
        foreach (var (file, spec) in files.SelectMany(f => Workflows.Experiments.Matrix.SweepLoader.LoadFile(f).Require().Select(v => (f, v.Spec))).SelectMany(x => new[]
                 {
                     x, (x.f, x.Item2 with { Resources = new ResourcesSpec(GpuType.A100, GpuCount: 1) }),
                     (x.f, x.Item2 with { Resources = new ResourcesSpec(GpuType.H200, GpuCount: 1) }),
                 }))
        {
            var train = TemplateLoader.Bind(template, spec).Steps.Single(s => s.Type == StepContracts.Train.Type);
            var parameters = StepParameters.Bind<TrainParameters>(train.Parameters, train.Id);
            var vocabulary = spec.Data.Tokenizer == "gpt2" ? 50257 : 32000;
            foreach (var device in new[] { "cpu", "cuda" })
            {
                var whole = Workflows.Training.SpecMapping.ToTrainingJob(spec, "out", vocabulary, 1_000_000, device, resume: true, experimentFile: file);
                var fromParameters = Workflows.Training.SpecMapping.ToTrainingJob(Jobs.TrainJobHandler.AsExperiment(parameters), "out", vocabulary, 1_000_000,
                    device, resume: true, experimentFile: file);
                fromParameters.Should().Be(whole, $"{Path.GetFileName(file)} on {device} with {spec.Resources}");
                placements.Add(whole.Training.Optimizer);
            }
        }

        placements.Should().HaveCount(2, "the cases must include both optimizer placements the memory plan can choose");
    }

    [Fact]
    public void No_step_type_is_spelled_out_in_code_outside_the_contracts()
    {
        var literal = new Regex("\"(prepare-data|evaluate-needle|evaluate-domain-loss)\"|(==|!=)\\s*\"(train|report)\"|Step\\s*==\\s*\"");
        var offenders = Directory.GetFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.EndsWith("StepContracts.cs", StringComparison.Ordinal))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetRelativePath(Root, f), Line: i + 1, Text: line)))
            .Where(l => literal.IsMatch(l.Text))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}")
            .ToList();

        offenders.Should().BeEmpty("step types are named once, in StepContracts.cs; code refers to them through it");
    }

    [Fact]
    public void The_sweep_planner_predicts_a_shared_job_step_exactly_when_the_engine_would_key_the_variants_alike()
    {
        // The smoke experiment under two learning rates and two needle grids: the planner's keys against the engine's
        // own job keys, built from the same bound parameters, with each needed step's output standing in by its planned
        // key (equal upstream keys give equal outputs).
        var workflows = Path.Combine(Root, "workflows");
        var template = TemplateLoader.LoadFile(Path.Combine(workflows, "continual-pretraining.yaml")).Template!;
        var yaml = File.ReadAllText(Path.Combine(Root, "experiments", "smoke.yaml"))
                   + "\nmatrix:\n  training.lr: { low: 1.0e-3, high: 3.0e-3 }\n  evaluation.needle.depths: [2, 3]\n";
        var sweep = Workflows.Experiments.Matrix.SweepLoader.LoadText("smoke.yaml", yaml, new LoadOptions(PolicyMode.Off, workflows));
        var plan = Workflows.Experiments.Planning.SweepPlanner.Create(sweep, template);

        var planned = sweep.Require().ToDictionary(v => v.Name, v => Workflows.Experiments.Planning.SweepPlanner.PlannedKeys(TemplateLoader.Bind(template, v.Spec), v.Spec));
        var engine = sweep.Variants.ToDictionary(v => v.Name, v =>
        {
            var bound = TemplateLoader.Bind(template, v.Spec);
            var types = bound.Steps.ToDictionary(s => s.Id, s => s.Type);
            return bound.Steps.Where(s => StepContracts.Find(s.Type) != StepContracts.PrepareData).ToDictionary(s => s.Id, s =>
                new StepJob("run", s.Id, s.Type, s.Parameters,
                    s.Needs.ToDictionary(n => types[n], n => new StepOutput(n, types[n], planned[v.Name][n], "cas/x/", planned[v.Name][n], Cached: true)),
                    Root, [], "", false).ComputeKey().Hash);
        });
        foreach (var step in engine.First().Value.Keys)
        {
            foreach (var a in sweep.Variants)
            {
                foreach (var b in sweep.Variants)
                {
                    (planned[a.Name][step] == planned[b.Name][step]).Should().Be(engine[a.Name][step] == engine[b.Name][step], $"{step}: {a.Name} vs {b.Name}");
                }
            }
        }

        plan.Steps!.ToDictionary(x => x.Step, x => x.Executions).Should().Contain(new Dictionary<string, int>
        {
            [StepContracts.Train.Type] = 2, [StepContracts.EvaluateNeedle.Type] = 4, [StepContracts.Report.Type] = 4,
        }, "the needle grid is not a training parameter; the evaluations and the report carry the variant's name");
    }

    /// <summary>Each job step's key for the smoke experiment (upstream outputs fixed, as a cached run would give them).</summary>
    private static Dictionary<string, string> Keys(string yaml)
    {
        var workflows = Path.Combine(Root, "workflows");
        var spec = ExperimentLoader.LoadText("smoke.yaml", yaml, new LoadOptions(PolicyMode.Off, workflows)).Require();
        var bound = TemplateLoader.Bind(TemplateLoader.LoadFile(Path.Combine(workflows, "continual-pretraining.yaml")).Template!, spec);
        var upstream = new StepOutput("x", "x", new string('a', 64), "cas/x/", new string('b', 64), Cached: true);
        return bound.Steps.Where(s => StepContracts.Find(s.Type) is { } c && c != StepContracts.PrepareData).ToDictionary(s => s.Type, s =>
            new StepJob("run", s.Id, s.Type, s.Parameters, StepContracts.Find(s.Type)!.Inputs.ToDictionary(i => i.Type, _ => upstream), Root, [], "", false)
                .ComputeKey().Hash);
    }
}
