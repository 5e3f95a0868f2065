using Workflows.Artifacts.Corpora;
using Workflows.Artifacts.Runs;
using Workflows.Cli.Commands;
using Workflows.Engine;
using Workflows.Engine.Jobs;
using Workflows.Engine.Steps;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// Runs over registered corpora. <c>wf rerun</c> of a run whose inputs are a corpus (no data.paths): the corpus manifest stands in for the
/// local files, so an unchanged corpus verifies and a corpus re-registered with other bytes is refused precisely. And the
/// domain-loss step over a held-out corpus (evaluation.domain_loss.corpus).
/// </summary>
[Collection(nameof(EnvironmentVariables))]
public sealed class CorpusRunTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-corpus-rerun-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    /// <summary>The prepare-data step of the test workflows (as in workflows/continual-pretraining.yaml).</summary>
    private const string PrepareDataStepYaml = """
          - id: prepare-data
            type: prepare-data
            fan_out: { over: shards, count: "${data.shards}" }
            with:
              corpus: "${data.corpus}"
              paths: "${data.paths}"
              mix: "${data.mix}"
              upsampling: "${data.upsampling}"
              token_budget: "${data.token_budget}"
              context: "${data.context}"
              seed: "${data.seed}"
              tokenizer: "${data.tokenizer}"
              budget_rule: "${data.budget_rule}"
        """;

    [Fact]
    public async Task Rerun_of_a_corpus_run_verifies_inputs_through_the_corpus_manifest_and_names_a_changed_file()
    {
        await using var storage = await TestStorage.StartAsync();
        var suffix = Guid.NewGuid().ToString("N")[..10];
        var env = new Dictionary<string, string?>
        {
            ["WF_STORAGE_CONNECTION_STRING"] = storage.Connection.ConnectionString,
            ["WF_TASK_HUB"] = "wfrerun" + suffix,
            ["WF_ARTIFACTS_CONTAINER"] = "rerun-" + suffix,
        };
        foreach (var (k, v) in env)
        {
            Environment.SetEnvironmentVariable(k, v);
        }

        // A workflow of prepare-data alone keeps this test to seconds.
        var workflows = Path.Combine(temp, "workflows");
        Directory.CreateDirectory(workflows);
        File.WriteAllText(Path.Combine(workflows, "prep-only.yaml"), """
            name: prep-only
            version: 1
            steps:

            """ + PrepareDataStepYaml);
        var experiment = Path.Combine(temp, "corpus-run.yaml");
        File.WriteAllText(experiment, """
            name: corpus-run
            profile: smoke
            workflow: prep-only
            model: { base: tiny }
            data:
              corpus: rerun-sample
              mix: { Book: 0.5, Github: 0.5 }
              upsampling: { mode: per-source, long_threshold: 1K, short_keep_ratio: 0.5, length_measure: tokens }
              token_budget: 16K
              context: 256
              tokenizer: gpt2
              shards: 2
            """);
        var sample = Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst");
        var heldOut = Path.Combine(Root, "samples", "slimpajama-pd", "heldout.jsonl.zst");
        var options = new EngineOptions
        {
            TaskHubName = env["WF_TASK_HUB"]!,
            ContainerName = env["WF_ARTIFACTS_CONTAINER"]!,
            CacheDirectory = Path.Combine(temp, "cache"),
            ResolveTokenizer = name => TokenizerResolver.Resolve(name, null, temp),
        };
        var host = await EngineHost.StartAsync(storage.Connection, options);
        try
        {
            Wf("corpus", "upload", "rerun-sample", sample).Exit.Should().Be(ExitCodes.Ok);
            var runId = await host.Client.SubmitAsync(EngineClient.Prepare(experiment, workflows, "0000000"));
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
            {
                var view = await host.Client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(300), cancellationToken: timeout.Token);
                view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
            }

            (await host.Client.Runs.GetAsync(runId))!.Record.DataPaths.Should().BeEmpty("the run read a registered corpus");

            var rerun = Wf("rerun", runId, "--force", "--wait", "--workflows-dir", workflows);
            rerun.Exit.Should().Be(ExitCodes.Ok, rerun.Out + rerun.Err);
            rerun.Out.Should().Contain("inputs verified: 1 file(s)").And.Contain("Data prep reproduced bit for bit: 2 shard(s)");

            // The same name now holds other bytes under the same key: the rerun is refused before anything is submitted.
            var changed = Path.Combine(temp, "changed");
            Directory.CreateDirectory(changed);
            File.Copy(heldOut, Path.Combine(changed, "sample.jsonl.zst"));
            Wf("corpus", "upload", "rerun-sample", Path.Combine(changed, "sample.jsonl.zst"), "--replace").Exit.Should().Be(ExitCodes.Ok);
            var expected = (await new CorpusRegistry(host.Client.Store).TryGetAsync("rerun-sample"))!.Files.Single();
            var refused = Wf("rerun", runId, "--workflows-dir", workflows);
            refused.Exit.Should().Be(ExitCodes.InvalidInput, refused.Out + refused.Err);
            refused.Err.Should().Contain("inputs of run").And.Contain("input sample.jsonl.zst: expected SHA-256")
                .And.Contain($"got {expected.Sha256}");
        }
        finally
        {
            await host.DisposeAsync();
            await host.Client.DeleteHubAsync();
            foreach (var k in env.Keys)
            {
                Environment.SetEnvironmentVariable(k, null);
            }
        }
    }

    [Fact]
    public async Task Domain_loss_reads_a_held_out_corpus_from_storage()
    {
        await using var storage = await TestStorage.StartAsync();
        var suffix = Guid.NewGuid().ToString("N")[..10];
        var workflows = Path.Combine(temp, "workflows");
        Directory.CreateDirectory(workflows);
        File.WriteAllText(Path.Combine(workflows, "train-and-loss.yaml"), """
            name: train-and-loss
            version: 1
            steps:

            """ + PrepareDataStepYaml + """

              - id: train
                type: train
                needs: [prepare-data]
                with: { model: "${model}", training: "${training}", context: "${data.context}", token_budget: "${data.token_budget}",
                        seed: "${data.seed}", tokenizer: "${data.tokenizer}", resources: "${resources}" }
              - id: evaluate-domain-loss
                type: evaluate-domain-loss
                needs: [train]
                with: { experiment: "${name}", domain_loss: "${evaluation.domain_loss}", tokenizer: "${data.tokenizer}" }
            """);
        // Beside the experiment: outside a git checkout an experiment may only name paths in its own folder (path policy).
        var sample = Path.Combine(temp, "sample.jsonl.zst");
        File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), sample);
        sample = sample.Replace("\\", "/", StringComparison.Ordinal);
        var experiment = Path.Combine(temp, "heldout-corpus.yaml");
        File.WriteAllText(experiment, $$"""
            name: heldout-corpus
            profile: smoke
            workflow: train-and-loss
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
              shards: 2
            training: { lr: 1.0e-3, batch_tokens: 512, micro_batch: 2, precision: fp32, max_steps: 2, activation_checkpointing: false }
            evaluation:
              domain_loss: { corpus: books-validation, lengths: [128, 256], buckets: [0-128, 128-256], documents_per_source: 2 }
            """);
        var options = new EngineOptions
        {
            TaskHubName = "wfheldout" + suffix,
            ContainerName = "heldout-" + suffix,
            CacheDirectory = Path.Combine(temp, "cache"),
            GpuJobPollInterval = TimeSpan.FromSeconds(1),
            ResolveTokenizer = name => TokenizerResolver.Resolve(name, null, temp),
        };
        Environment.SetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING", storage.Connection.ConnectionString);
        var host = await EngineHost.StartAsync(storage.Connection, options);
        using var agentStop = new CancellationTokenSource();
        var agent = new GpuAgent(host.Services, host.Steps.GpuJobs) { PollInterval = TimeSpan.FromMilliseconds(300) }.RunAsync(agentStop.Token);
        try
        {
            var heldOut = Path.Combine(Root, "samples", "slimpajama-pd", "heldout.jsonl.zst");
            var upload = Wf("corpus", "upload", "books-validation", heldOut, "--container", options.ContainerName);
            upload.Exit.Should().Be(ExitCodes.Ok, upload.Err);
            var runId = await host.Client.SubmitAsync(EngineClient.Prepare(experiment, workflows, "0000000"));
            RunView view;
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
            {
                view = await host.Client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(300), cancellationToken: timeout.Token);
            }

            view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
            var prefix = view.Record.Steps.Single(s => s.Step == "evaluate-domain-loss").OutputPrefix!;
            var local = Path.Combine(temp, "loss");
            await StepOutputs.DownloadAsync(host.Services, prefix, DomainLossJobHandler.OutputFolder, local);
            var report = Workflows.Evaluation.DomainLoss.DomainLossJson.Read(Path.Combine(local, "loss.json"));
            report.Buckets.Should().NotBeEmpty().And.OnlyContain(b => b.Source == Workflows.Experiments.Spec.SlimPajamaSource.Book && b.Tokens > 0);
            var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(heldOut)));
            File.ReadAllText(Path.Combine(local, "inputs.json")).Should().Contain("corpus:books-validation/heldout.jsonl.zst").And.Contain(sha);

            // New bytes under the same corpus name: the held-out SHA-256 is in the step's key, so the loss is evaluated
            // again (train stays cached) instead of a stale loss being reused.
            var changed = Path.Combine(temp, "changed");
            Directory.CreateDirectory(changed);
            File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), Path.Combine(changed, "heldout.jsonl.zst"));
            Wf("corpus", "upload", "books-validation", Path.Combine(changed, "heldout.jsonl.zst"), "--replace", "--container", options.ContainerName)
                .Exit.Should().Be(ExitCodes.Ok);
            var second = await host.Client.SubmitAsync(EngineClient.Prepare(experiment, workflows, "0000000"));
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
            {
                view = await host.Client.WaitAsync(second, pollInterval: TimeSpan.FromMilliseconds(300), cancellationToken: timeout.Token);
            }

            view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
            view.Record.Steps.Single(s => s.Step == "train").Cached.Should().BeTrue();
            var again = view.Record.Steps.Single(s => s.Step == "evaluate-domain-loss");
            again.Cached.Should().BeFalse("the held-out bytes changed");
            var local2 = Path.Combine(temp, "loss2");
            await StepOutputs.DownloadAsync(host.Services, again.OutputPrefix!, DomainLossJobHandler.OutputFolder, local2);
            Workflows.Evaluation.DomainLoss.DomainLossJson.Read(Path.Combine(local2, "loss.json")).Buckets
                .Should().Contain(b => b.Source == Workflows.Experiments.Spec.SlimPajamaSource.Github, "the new held-out file has code");
        }
        finally
        {
            await agentStop.CancelAsync();
            await agent;
            await host.DisposeAsync();
            await host.Client.DeleteHubAsync();
            Environment.SetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING", null);
        }
    }
}
