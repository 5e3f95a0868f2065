using System.Text.Json;
using Workflows.Cli.Commands;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

public sealed class CliTests
{

    private static string Example(string name) => Path.Combine(Root, "experiments", name);

    [Fact]
    public void Validate_of_all_examples_exits_0()
    {
        var (exit, output, _) = Wf("validate", Path.Combine(Root, "experiments"), Path.Combine(Root, "workflows"));

        exit.Should().Be(ExitCodes.Ok, output);
        output.Should().Contain("15 file(s): 15 valid, 0 invalid").And.Contain("smoke-sweep.yaml (sweep of 3 variant(s))").And.Contain("paper-table3.yaml (sweep of 6 variant(s))");
    }

    [Fact]
    public void Validate_of_a_bad_file_exits_1_with_file_line_column()
    {
        var bad = Path.Combine(Root, "tests", "Workflows.Experiments.Tests", "Malformed", "unknown-nested-key.yaml");

        var (exit, output, _) = Wf("validate", bad);

        exit.Should().Be(ExitCodes.InvalidInput);
        output.Should().Contain($"{bad}:8:3: error UnknownKey: unknown key 'tokne_budget' in 'data'");
        output.Should().Contain("hint: did you mean 'token_budget'?");
        output.Should().NotContain("\u001b[", "no colour codes when output is not a terminal");
    }

    [Fact]
    public void Validate_json_lists_every_error_with_position()
    {
        var bad = Path.Combine(Root, "tests", "Workflows.Experiments.Tests", "Malformed", "many-errors-at-once.yaml");

        var (exit, output, _) = Wf("validate", "--json", bad, Example("smoke.yaml"));

        exit.Should().Be(ExitCodes.InvalidInput);
        using var doc = JsonDocument.Parse(output);
        var files = doc.RootElement.GetProperty("files");
        files.GetArrayLength().Should().Be(2);
        files[0].GetProperty("valid").GetBoolean().Should().BeFalse();
        files[0].GetProperty("errors").GetArrayLength().Should().Be(5);
        files[0].GetProperty("errors")[0].GetProperty("line").GetInt32().Should().Be(6);
        files[1].GetProperty("valid").GetBoolean().Should().BeTrue();
        files[1].GetProperty("content_hash").GetString().Should().MatchRegex("^[0-9a-f]{64}$");
    }

    [Fact]
    public void Usage_errors_exit_2()
    {
        Wf("validate").Exit.Should().Be(ExitCodes.Usage);
        Wf("no-such-command").Exit.Should().Be(ExitCodes.Usage);
        Wf("plan", Example("smoke.yaml"), "--no-such-option").Exit.Should().Be(ExitCodes.Usage);
        Wf("plan", Example("smoke.yaml"), "--gpu-hour-price", "tpu=3").Exit.Should().Be(ExitCodes.Usage);
    }

    [Fact]
    public void Help_explains_and_exits_0()
    {
        var (exit, output, _) = Wf("validate", "--help");

        exit.Should().Be(ExitCodes.Ok);
        output.Should().Contain("FILE:LINE:COLUMN").And.Contain("Examples:");
    }

    [Fact]
    public void Plan_prints_the_table_of_the_per_source_experiment()
    {
        var (exit, output, _) = Wf("plan", Example("per-source-5b-80k.yaml"));

        exit.Should().Be(ExitCodes.Ok);
        output.Should().Contain("61,035").And.Contain("49 sequences = 4,014,080 tokens per step").And.Contain("1,245");
        output.Should().Contain("Tokens per source").And.Contain("CommonCrawl").And.Contain("a100-80g *");
        output.Should().Contain("400 cells");
    }

    [Fact]
    public void The_plan_of_13b_at_64k_on_eight_a100s_chooses_zero_stage_3_with_the_optimizer_in_host_memory()
    {
        Wf("validate", Example("per-source-13b-64k.yaml")).Exit.Should().Be(ExitCodes.Ok);
        var (exit, output, _) = Wf("plan", Example("per-source-13b-64k.yaml"));
        exit.Should().Be(ExitCodes.Ok);
        output.Should().Contain("optimizer on cpu, ZeRO stage 3").And.Contain("parameters (sharded, 2 blocks gathered)").And.NotContain("refused");
    }

    [Fact]
    public void A_gpu_agent_with_several_gpus_refuses_a_fixed_device_before_touching_storage()
    {
        var (exit, _, error) = Wf("gpu-agent", "--device", "cuda:1", "--gpus", "2");
        exit.Should().Be(ExitCodes.Usage);
        error.Should().Contain("--gpus 2").And.Contain("GPUs 0..N-1");
        Wf("gpu-agent", "--gpus", "0").Exit.Should().Be(ExitCodes.Usage);
    }

    [Fact]
    public void Plan_json_is_machine_readable()
    {
        var (exit, output, _) = Wf("plan", "--json", Example("per-source-5b-80k.yaml"));

        exit.Should().Be(ExitCodes.Ok);
        using var doc = JsonDocument.Parse(output);
        doc.RootElement.GetProperty("training").GetProperty("steps").GetInt64().Should().Be(1245);
        doc.RootElement.GetProperty("data").GetProperty("sources").GetArrayLength().Should().Be(7);
    }

    [Fact]
    public void Plan_markdown_has_tables()
    {
        var (exit, output, _) = Wf("plan", "--markdown", Example("smoke.yaml"));

        exit.Should().Be(ExitCodes.Ok);
        output.Should().Contain("#### Tokens per source").And.Contain("| source | weight |");
    }

    [Fact]
    public void Plan_of_an_invalid_file_exits_1()
    {
        var bad = Path.Combine(Root, "tests", "Workflows.Experiments.Tests", "Malformed", "weights-sum-low.yaml");

        Wf("plan", bad).Exit.Should().Be(ExitCodes.InvalidInput);
    }

    [Fact]
    public void Schema_check_detects_drift()
    {
        Wf("schema", "--check", Path.Combine(Root, "experiments", "schema.json")).Exit.Should().Be(ExitCodes.Ok);
        var stale = Path.GetTempFileName();
        try
        {
            File.WriteAllText(stale, "{}");
            Wf("schema", "--check", stale).Exit.Should().Be(ExitCodes.InvalidInput);
        }
        finally
        {
            File.Delete(stale);
        }
    }
}

public sealed class DoctorTests
{
    [Fact]
    public void Doctor_loads_libtorch_and_reports_the_device()
    {
        var (exit, output, _) = Wf("doctor");

        exit.Should().Be(ExitCodes.Ok, output);
        output.Should().Contain("libtorch: loaded").And.Contain("CPU matmul ok (2)").And.Contain("CUDA:");
    }
}
