using System.Text.Json;
using Workflows.Cli.Commands;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>wf prep and wf train end to end on the shipped public-domain sample (no shared corpus needed).</summary>
public sealed class PrepAndTrainCommandTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-cli-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    /// <summary>
    /// A 1-layer model at 256 tokens, 3 steps: small enough for CI, same code path as the smoke run. The sample is copied
    /// beside the experiment: outside a git checkout an experiment may only name paths in its own folder (path policy).
    /// </summary>
    private string TinyExperiment()
    {
        var sample = Path.Combine(temp, "sample.jsonl.zst");
        if (!File.Exists(sample))
        {
            File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), sample);
        }

        sample = sample.Replace("\\", "/", StringComparison.Ordinal);
        var path = Path.Combine(temp, "tiny-run.yaml");
        File.WriteAllText(path, $$"""
            name: tiny-run
            profile: smoke
            model:
              base: tiny
              architecture: { layers: 1, hidden_size: 64, heads: 2, intermediate_size: 128 }
            data:
              paths: ["{{sample}}"]
              mix: { Book: 0.5, Github: 0.5 }
              upsampling: { mode: per-source, long_threshold: 1K, short_keep_ratio: 0.5, length_measure: tokens }
              token_budget: 16K
              context: 256
              tokenizer: gpt2
            training:
              lr: 1.0e-3
              batch_tokens: 512
              micro_batch: 2
              precision: fp32
              max_steps: 3
              checkpoint_interval: 2
              activation_checkpointing: false
            evaluation:
              needle: { lengths: { from: 128, to: 256, count: 2 }, depths: 2, max_new_tokens: 4 }
              domain_loss: { lengths: [128, 256], buckets: [0-128, 128-256], documents_per_source: 2 }
            """);
        return path;
    }

    [Fact]
    public void Prep_then_train_writes_shards_manifest_checkpoints_and_a_model()
    {
        var experiment = TinyExperiment();
        var data = Path.Combine(temp, "data");
        var train = Path.Combine(temp, "train");

        var prep = Wf("prep", experiment, "--out", data, "--threads", "1");

        prep.Exit.Should().Be(ExitCodes.Ok, prep.Err + prep.Out);
        prep.Out.Should().Contain("| Book").And.Contain("| Github").And.Contain("manifest:");
        using (var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(data, "manifest.json"))))
        {
            manifest.RootElement.GetProperty("contextLength").GetInt32().Should().Be(256);
            manifest.RootElement.GetProperty("tokens").GetInt64().Should().BeGreaterThan(15_000);
        }

        var run = Wf("train", experiment, "--data", data, "--out", train);

        run.Exit.Should().Be(ExitCodes.Ok, run.Err + run.Out);
        run.Out.Should().Contain("finished 3 steps");
        File.ReadAllLines(Path.Combine(train, "metrics.jsonl")).Should().HaveCount(3);
        File.Exists(Path.Combine(train, "final-model", "model.safetensors")).Should().BeTrue();
        Directory.GetDirectories(Path.Combine(train, "checkpoints")).Should().NotBeEmpty();
    }

    [Fact]
    public void Eval_needle_loss_and_report_run_without_the_engine_and_mark_losses_against_the_baseline()
    {
        var experiment = TinyExperiment();
        var data = Path.Combine(temp, "data");
        var train = Path.Combine(temp, "train");
        Wf("prep", experiment, "--out", data, "--threads", "1").Exit.Should().Be(ExitCodes.Ok);
        Wf("train", experiment, "--data", data, "--out", train).Exit.Should().Be(ExitCodes.Ok);
        var model = Path.Combine(train, "final-model");
        var heldOut = Path.Combine(Root, "samples", "slimpajama-pd", "heldout.jsonl.zst");

        var needle = Wf("eval", "needle", experiment, "--model", model, "--out", Path.Combine(temp, "needle"));
        needle.Exit.Should().Be(ExitCodes.Ok, needle.Err + needle.Out);
        Directory.GetFiles(Path.Combine(temp, "needle"), "*_results.json").Should().HaveCount(4, "2 lengths x 2 depths");

        var loss = Wf("eval", "loss", experiment, "--model", model, "--validation", heldOut, "--out", Path.Combine(temp, "loss"));
        loss.Exit.Should().Be(ExitCodes.Ok, loss.Err + loss.Out);
        var lossFile = Path.Combine(temp, "loss", "loss.json");
        var ours = Workflows.Evaluation.DomainLoss.DomainLossJson.Read(lossFile);
        File.ReadAllText(Path.Combine(temp, "loss", "inputs.json")).Should().Contain(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(heldOut))),
            "the runner records exactly which bytes it read");
        ours.Buckets.Should().OnlyContain(b => b.Source == Workflows.Experiments.Spec.SlimPajamaSource.Book && b.Tokens > 0 && b.Loss > 0);

        // A baseline 0.5 better in the first bucket and 0.5 worse in the second: red, then green, by Table 5's rule.
        var baselineFile = Path.Combine(temp, "baseline-loss.json");
        Workflows.Evaluation.DomainLoss.DomainLossJson.Write(baselineFile, ours with
        {
            Buckets = [ours.Buckets[0] with { Loss = ours.Buckets[0].Loss - 0.5 }, ours.Buckets[1] with { Loss = ours.Buckets[1].Loss + 0.5 }],
        });
        var report = Wf("eval", "report", experiment, "--needle", Path.Combine(temp, "needle"), "--loss", lossFile,
            "--baseline-loss", baselineFile, "--out", Path.Combine(temp, "report"));

        report.Exit.Should().Be(ExitCodes.Ok, report.Err + report.Out);
        var md = File.ReadAllText(Path.Combine(temp, "report", "report.md"));
        md.Should().Contain("needle heatmap").And.Contain("| 0-128 | Book |").And.Contain("🔴 +0.500").And.Contain("🟢 −0.500");
        File.Exists(Path.Combine(temp, "report", "report.json")).Should().BeTrue();
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(temp, "report", "report.json")));
        var rows = json.RootElement.GetProperty("loss").GetProperty("rows");
        rows[0].GetProperty("mark").GetString().Should().Be("red");
        rows[1].GetProperty("mark").GetString().Should().Be("green");

        File.WriteAllText(baselineFile, "{ not json");
        var bad = Wf("eval", "report", experiment, "--needle", Path.Combine(temp, "needle"), "--baseline-loss", baselineFile, "--out", Path.Combine(temp, "r2"));
        bad.Exit.Should().Be(ExitCodes.InvalidInput);
        bad.Err.Should().Contain(baselineFile).And.Contain("not a domain-loss report");
    }

    [Fact]
    public void Train_refuses_data_packed_at_another_context()
    {
        var experiment = TinyExperiment();
        var data = Path.Combine(temp, "data");
        Wf("prep", experiment, "--out", data).Exit.Should().Be(ExitCodes.Ok);
        var other = Path.Combine(temp, "other.yaml");
        File.WriteAllText(other, File.ReadAllText(experiment).Replace("context: 256", "context: 512", StringComparison.Ordinal).Replace("name: tiny-run", "name: other-run", StringComparison.Ordinal)
            .Replace("batch_tokens: 512", "batch_tokens: 1024", StringComparison.Ordinal));

        var run = Wf("train", other, "--data", data, "--out", Path.Combine(temp, "t"));

        run.Exit.Should().Be(ExitCodes.InvalidInput);
        run.Err.Should().Contain("packed at 256 tokens but the experiment trains at 512");
    }

    [Fact]
    public void Prep_of_a_missing_input_is_a_clear_error()
    {
        var experiment = File.ReadAllText(TinyExperiment()).Replace("sample.jsonl.zst", "missing.jsonl.zst", StringComparison.Ordinal);
        var path = Path.Combine(temp, "missing.yaml");
        File.WriteAllText(path, experiment.Replace("name: tiny-run", "name: missing", StringComparison.Ordinal));

        var prep = Wf("prep", path, "--out", Path.Combine(temp, "d"));

        prep.Exit.Should().Be(ExitCodes.InvalidInput);
        prep.Err.Should().Contain("missing.jsonl.zst");
    }

    [Fact]
    public void Tokenize_prints_one_json_line_per_document()
    {
        var sample = Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst");

        var result = Wf("tokenize", "--tokenizer", "gpt2", sample);

        result.Exit.Should().Be(ExitCodes.Ok, result.Err);
        var lines = result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().HaveCount(29);
        using var first = JsonDocument.Parse(lines[0]);
        first.RootElement.GetProperty("ids").GetArrayLength().Should().BeGreaterThan(100);
        first.RootElement.GetProperty("line").GetInt64().Should().Be(1);
    }
}
