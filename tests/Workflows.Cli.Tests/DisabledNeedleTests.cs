using System.Text;
using System.Text.Json.Nodes;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Cli.Commands;
using Workflows.Evaluation.Comparison;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Reports;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.GitOps.Comments;
using Workflows.GitOps.Runs;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// An experiment with <c>evaluation.needle.enabled: false</c> without the engine (<c>wf eval needle</c>, <c>wf eval
/// report</c>), and a run of it as every reader downstream of the report sees it: the PR comment, the comparison,
/// <c>wf show</c>. No model is trained: nothing here may need one.
/// </summary>
public sealed class DisabledNeedleTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-cli-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    /// <summary>A small experiment beside a copy of the sample (the path policy keeps it to its own folder), the needle on or off.</summary>
    private string Experiment(bool needle)
    {
        var sample = Path.Combine(temp, "sample.jsonl.zst");
        if (!File.Exists(sample))
        {
            File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), sample);
        }

        var path = Path.Combine(temp, needle ? "needle-on.yaml" : "needle-off.yaml");
        File.WriteAllText(path, $$"""
            name: {{(needle ? "needle-on" : "needle-off")}}
            profile: smoke
            model: { base: tiny }
            data:
              paths: ["{{sample.Replace("\\", "/", StringComparison.Ordinal)}}"]
              mix: { Book: 0.5, Github: 0.5 }
              token_budget: 16K
              context: 256
              tokenizer: gpt2
            training: { lr: 1.0e-3, batch_tokens: 512, micro_batch: 2, precision: fp32 }
            evaluation:
              needle: { enabled: {{(needle ? "true" : "false")}}, lengths: { from: 128, to: 256, count: 2 }, depths: 2 }
              domain_loss: { lengths: [128, 256], buckets: [0-128, 128-256], documents_per_source: 2 }
            """);
        return path;
    }

    private string LossFile()
    {
        var file = Path.Combine(temp, "loss.json");
        DomainLossJson.Write(file, new DomainLossReport("needle-off", [new("0-128", SlimPajamaSource.Book, 3.25, 40)], [new LengthLossEntry(128, SlimPajamaSource.Book, 3.5, 40)]));
        return file;
    }

    [Fact]
    public void Wf_eval_needle_runs_nothing_and_wf_eval_report_says_disabled_with_the_loss_table()
    {
        var off = Experiment(needle: false);
        var needleOut = Path.Combine(temp, "needle");

        var needle = Wf("eval", "needle", off, "--out", needleOut);

        needle.Exit.Should().Be(ExitCodes.Ok, needle.Err);
        needle.Out.Should().Contain("evaluation.needle.enabled is false for 'needle-off'");
        Directory.Exists(needleOut).Should().BeFalse("a disabled evaluation writes nothing (and needed no --model)");

        var report = Wf("eval", "report", off, "--loss", LossFile(), "--out", Path.Combine(temp, "report"));

        report.Exit.Should().Be(ExitCodes.Ok, report.Err);
        var md = File.ReadAllText(Path.Combine(temp, "report", "report.md"));
        md.Should().Contain("Disabled (`evaluation.needle.enabled: false`)").And.Contain("| 0-128 | Book | 3.250 |");
        File.Exists(Path.Combine(temp, "report", "needle-heatmap.png")).Should().BeFalse();

        var given = Wf("eval", "report", off, "--needle", needleOut, "--out", Path.Combine(temp, "r2"));
        given.Exit.Should().Be(ExitCodes.Usage);
        given.Err.Should().Contain("evaluation.needle.enabled is false").And.Contain("drop --needle");
        var missing = Wf("eval", "report", Experiment(needle: true), "--out", Path.Combine(temp, "r3"));
        missing.Exit.Should().Be(ExitCodes.Usage);
        missing.Err.Should().Contain("--needle is required");
    }

    [Fact]
    public async Task A_run_that_disabled_the_needle_reads_as_disabled_in_its_comment_its_comparison_and_wf_show()
    {
        await using var storage = await TestStorage.StartAsync();
        var store = await BlobArtifactStore.OpenAsync(storage.Connection, "needle-off-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            var off = Experiment(needle: false);
            var reportDir = Path.Combine(temp, "report");
            Workflows.Evaluation.Reports.RunReport.Write(reportDir, new ReportParameters("needle-off", "tiny", NeedleScorer.WordRecall, 256, 16_000), new ReportSources(null, LossFile()));
            var record = new RunRecord
            {
                RunId = "needle-off-run",
                ExperimentName = "needle-off",
                ExperimentHash = new string('e', 64),
                CodeCommit = "test",
                Status = RunStatus.Succeeded,
                SubmittedAt = DateTimeOffset.UnixEpoch,
                Steps =
                [
                    await PublishAsync(store, StepContracts.EvaluateNeedle.Type, [], EvaluationState.Disabled),
                    await PublishAsync(store, StepContracts.EvaluateDomainLoss.Type, [("domain-loss/loss.json", LossFile())], EvaluationState.Evaluated),
                    await PublishAsync(store, StepContracts.Report.Type,
                        [("report/report.md", Path.Combine(reportDir, "report.md")), ("report/report.json", Path.Combine(reportDir, "report.json"))], null),
                ],
            };
            await new RunRecordStore(store).CreateAsync(record, File.ReadAllText(off));

            var results = await new RunResults(store, null).BuildAsync(record);
            results.NeedleDisabled.Should().BeTrue();
            results.MeanNeedleScore.Should().BeNull();
            results.EffectiveLength.Should().BeNull();
            results.LossTableMarkdown.Should().Contain("| 0-128 | Book | 3.250 |", "the loss is still reported");
            results.StatusDescription.Should().Be("run needle-off-run succeeded (needle evaluation disabled)");
            ResultsComment.Render(results).Should().Contain("| needle in a haystack | disabled (`evaluation.needle.enabled: false`) |")
                .And.NotContain("mean needle score");

            var headline = await new RunOutputsReader(store).NeedleAsync(record);
            ShowCommand.Score(headline).Should().Be("disabled");

            var compared = await new RunComparisonLoader(store).LoadAsync(record);
            compared.NeedleDisabled.Should().BeTrue();
            compared.Loss.Should().NotBeNull();
            var comparison = Comparison.Build(new ComparisonInput("t", [compared]));
            comparison.Runs.Single().NeedleDisabled.Should().BeTrue();
            ComparisonMarkdown.Render(comparison, name => name).Should().Contain("Disabled (`evaluation.needle.enabled: false`) in `needle-off` (baseline)");
        }
        finally
        {
            await store.Container.DeleteAsync();
        }
    }

    [Fact]
    public void A_report_json_written_before_the_state_field_reads_by_its_mean()
    {
        var old = NeedleHeadline.Of(JsonNode.Parse("""{ "needle": { "scorer": "word-recall", "mean": 0.5 } }"""));
        old.Should().Be(new NeedleHeadline(0.5, false));
        old.Text("–").Should().Be("0.500");
        NeedleHeadline.Of(JsonNode.Parse("""{ "needle": { "state": "disabled" } }""")).Text("–").Should().Be("disabled");
        NeedleHeadline.Of(JsonNode.Parse("""{ "needle": null }""")).Text("–").Should().Be("–", "no needle section: not disabled, just nothing to show");
        RunResults.EffectiveLengthOf(JsonNode.Parse("""{ "state": "disabled" }""")).Should().BeNull();
    }

    [Fact]
    public void A_sweep_variant_that_disabled_the_needle_shows_disabled_not_a_missing_score()
    {
        var md = SweepComment.Render(new SweepReport("s", "sweep-1",
        [
            new SweepVariantState(1, "s-on", "run-1", RunState.Succeeded, "evaluation.needle.enabled = true", 0.5, "256 tokens", TimeSpan.FromSeconds(3)),
            new SweepVariantState(2, "s-off", "run-2", RunState.Succeeded, "evaluation.needle.enabled = false", Duration: TimeSpan.FromSeconds(2), NeedleDisabled: true),
        ]));

        md.Should().Contain("| 1 | `s-on` | evaluation.needle.enabled = true | `run-1` | succeeded | 0.500 | 256 tokens |")
            .And.Contain("| 2 | `s-off` | evaluation.needle.enabled = false | `run-2` | succeeded | disabled | – |");
    }

    /// <summary>A step's output as the engine publishes it: the files under their paths, the state property, a step record pointing at it.</summary>
    private static async Task<StepRecord> PublishAsync(IArtifactStore store, string type, IReadOnlyList<(string Path, string File)> files, string? state)
    {
        var key = ArtifactKey.FromParts(type, "1", Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(type))));
        var writer = new ManifestStore(store).BeginWrite(key, "test");
        foreach (var (path, file) in files)
        {
            await using var content = File.OpenRead(file);
            await writer.PutAsync(path, content);
        }

        await writer.PublishAsync(state is null ? null : new Dictionary<string, string> { [EvaluationState.Property] = state });
        return new StepRecord { Step = type, Type = type, Status = "succeeded", OutputPrefix = key.Prefix };
    }
}
