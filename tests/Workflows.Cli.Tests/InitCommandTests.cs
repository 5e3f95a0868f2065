using Workflows.Cli.Commands;
using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>wf init: an experiments repository an installed wf can validate, plan and run.</summary>
public sealed class InitCommandTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-init-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    [Fact]
    public void Init_scaffolds_a_repository_whose_example_validates_and_plans_and_keeps_existing_files()
    {
        var repo = Path.Combine(temp, "my-experiments");
        var init = Wf("init", repo);

        init.Exit.Should().Be(ExitCodes.Ok, init.Err);
        foreach (var file in new[]
        {
            "experiments/example.yaml", "experiments/example-sweep.yaml", "experiments/schema.json", "experiments/paper/per-source-5b-80k.yaml",
            "experiments/paper/per-source-13b-64k.yaml", "experiments/paper/paper-table3.yaml", "workflows/continual-pretraining.yaml", ".gitignore",
            ".github/workflows/experiment-pr.yml", ".github/workflows/experiment-archive.yml", ".github/workflows/experiment-rerun.yml",
            "samples/slimpajama-pd/sample.jsonl.zst", "samples/slimpajama-pd/heldout.jsonl.zst", "samples/haystack/03-a-modest-proposal.txt",
        })
        {
            File.Exists(Path.Combine(repo, file)).Should().BeTrue(file);
        }

        File.ReadAllText(Path.Combine(repo, "experiments", "schema.json")).Should().Be(File.ReadAllText(Path.Combine(Root, "experiments", "schema.json")));
        File.ReadAllBytes(Path.Combine(repo, "samples", "slimpajama-pd", "sample.jsonl.zst")).Should().Equal(File.ReadAllBytes(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst")));
        var pr = File.ReadAllText(Path.Combine(repo, ".github", "workflows", "experiment-pr.yml"));
        pr.Should().Contain("- name: Install wf").And.Contain("dotnet tool install wf --version").And.NotContain("src/Workflows.Cli").And.NotContain("global.json");
        new YamlDotNet.RepresentationModel.YamlStream().Invoking(y => y.Load(new StringReader(pr))).Should().NotThrow();

        var validate = Wf("validate", Path.Combine(repo, "experiments"), Path.Combine(repo, "workflows"));
        validate.Exit.Should().Be(ExitCodes.Ok, validate.Out + validate.Err);
        validate.Out.Should().Contain("example.yaml").And.Contain("per-source-5b-80k.yaml").And.Contain(" valid, 0 invalid")
            .And.Contain("example-sweep.yaml (sweep of 3 variant(s))").And.Contain("example-sweep-per-source-lr-high");
        File.Exists(Path.Combine(repo, "experiments", "paper", "smoke-sweep.yaml")).Should().BeFalse("its sample paths are relative to experiments/: it is example-sweep.yaml");
        File.ReadAllText(Path.Combine(repo, "experiments", "paper", "original-5b-80k.yaml")).Should().Be(File.ReadAllText(Path.Combine(Root, "experiments", "original-5b-80k.yaml")));
        var plan = Wf("plan", Path.Combine(repo, "experiments", "example.yaml"));
        plan.Exit.Should().Be(ExitCodes.Ok, plan.Err);
        var sweepPlan = Wf("plan", Path.Combine(repo, "experiments", "example-sweep.yaml"));
        sweepPlan.Exit.Should().Be(ExitCodes.Ok, sweepPlan.Err);
        sweepPlan.Out.Should().Contain("prepare-data (measure pass)");

        File.WriteAllText(Path.Combine(repo, "experiments", "example.yaml"), "# mine\n");
        var again = Wf("init", repo);
        again.Exit.Should().Be(ExitCodes.Ok);
        again.Out.Should().Contain("kept   experiments/example.yaml");
        File.ReadAllText(Path.Combine(repo, "experiments", "example.yaml")).Should().Be("# mine\n");
    }

    [Fact]
    public void Every_gitops_workflow_of_the_repository_is_rewritten_to_install_the_tool()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(Root, ".github", "workflows"), "experiment-*.yml"))
        {
            var original = File.ReadAllText(file);
            var rewritten = InitCommand.InstallToolInsteadOfBuilding(original);
            rewritten.Should().NotContain("dotnet publish", file);
            original.Split("- name: Build wf").Length.Should().Be(rewritten.Split("- name: Install wf").Length, file);
        }
    }
}
