using Workflows.Artifacts.Corpora;
using Workflows.Artifacts.Store;
using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;
using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary><c>wf corpus upload|list|show</c> against a real Azurite (in a container of its own).</summary>
[Collection(nameof(EnvironmentVariables))]
public sealed class CorpusCommandTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-corpus-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    [Fact]
    public void Stats_measures_local_files_per_source_and_the_plan_uses_them()
    {
        var folder = Path.Combine(Root, "samples", "slimpajama-pd");
        var statsPath = Path.Combine(temp, "corpora", "pd.stats.json");

        var stats = Wf("corpus", "stats", "--name", "pd", "--tokenizer", "gpt2", "--out", statsPath, folder);

        stats.Exit.Should().Be(0, stats.Err);
        stats.Out.Should().Contain("| Book").And.Contain("| Github").And.Contain("long share (>= 4K tokens)");
        var measured = CorpusStatistics.Read(statsPath);
        measured.Files.Should().HaveCount(2);
        measured.Sources.Keys.Should().Contain([SlimPajamaSource.Book, SlimPajamaSource.Github]);

        // An experiment of this corpus (data.corpus: pd) in the same repository finds corpora/pd.stats.json itself.
        var experiment = Path.Combine(temp, "experiments", "pd-run.yaml");
        Directory.CreateDirectory(Path.GetDirectoryName(experiment)!);
        File.WriteAllText(experiment, File.ReadAllText(Path.Combine(Root, "experiments", "smoke.yaml"))
            .Replace("name: smoke", "name: pd-run", StringComparison.Ordinal)
            .Replace("paths: [../samples/slimpajama-pd/sample.jsonl.zst]", "corpus: pd", StringComparison.Ordinal)
            .Replace("paths: [../samples/slimpajama-pd/heldout.jsonl.zst]", "corpus: pd-heldout", StringComparison.Ordinal));
        var plan = Wf("plan", experiment);
        plan.Exit.Should().Be(0, plan.Err + plan.Out);
        plan.Out.Should().Contain("length distributions measured: pd (").And.Contain("epochs needed").And.NotContain("assumed, not measured");

        Wf("corpus", "stats", Path.Combine(temp, "nothing")).Exit.Should().Be(1);
    }

    [Fact]
    public async Task Upload_registers_content_addressed_blobs_and_a_manifest_skips_known_blobs_and_list_and_show_read_it_back()
    {
        await using var storage = await TestStorage.StartAsync();
        var container = "corpus-" + Guid.NewGuid().ToString("N")[..12];
        var sample = Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst");
        var previous = Environment.GetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING");
        Environment.SetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING", storage.Connection.ConnectionString);
        try
        {
            var localStats = Path.Combine(temp, "sample.stats.json");
            var first = Wf("corpus", "upload", "sample", sample, "--container", container, "--tokenizer", "gpt2", "--stats-out", localStats);
            first.Exit.Should().Be(0, first.Err);
            first.Out.Should().Contain("uploaded").And.Contain("sample.jsonl.zst").And.Contain("corpus sample: 1 file(s), 152,274 bytes");
            first.Out.Should().Contain("statistics: corpora/sample/stats.json in the store");
            var measured = CorpusStatistics.Read(localStats);
            measured.Tokenizer.Should().Be("gpt2");
            measured.Files.Should().ContainSingle().Which.Key.Should().Be("sample.jsonl.zst");

            var store = await BlobArtifactStore.OpenAsync(storage.Connection, container);
            var manifest = (await new CorpusRegistry(store).TryGetAsync("sample"))!;
            var file = manifest.Files.Should().ContainSingle().Subject;
            file.Key.Should().Be("sample.jsonl.zst");
            file.Sha256.Should().Be(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(sample))));
            (await store.GetPropertiesAsync($"corpora/blobs/{file.Sha256}"))!.Length.Should().Be(new FileInfo(sample).Length);

            (await new CorpusRegistry(store).TryReadTextAsync(CorpusRegistry.StatisticsName("sample"))).Should().Be(File.ReadAllText(localStats));

            var again = Wf("corpus", "upload", "sample", sample, "--container", container, "--tokenizer", "gpt2", "--stats-out", localStats);
            again.Exit.Should().Be(0, again.Err);
            again.Err.Should().Contain("cached    sample.jsonl.zst", "a file is measured once, then found by its content");
            again.Out.Should().Contain("stored").And.Contain("uploaded 0 bytes").And.Contain("manifest unchanged");

            // The folder holds a second file: a different corpus under the same name needs --replace.
            var folder = Path.GetDirectoryName(sample)!;
            var clash = Wf("corpus", "upload", "sample", folder, "--container", container, "--no-stats");
            clash.Exit.Should().Be(1);
            clash.Err.Should().Contain("--replace");
            Wf("corpus", "upload", "pd", folder, "--container", container, "--no-stats").Exit.Should().Be(0);

            var list = Wf("corpus", "list", "--container", container);
            list.Exit.Should().Be(0, list.Err);
            list.Out.Should().MatchRegex(@"(?s)^pd\s+2 file\(s\).*\nsample\s+1 file\(s\)");

            var show = Wf("corpus", "show", "sample", "--container", container);
            show.Exit.Should().Be(0, show.Err);
            show.Out.Should().Contain(file.Sha256).And.Contain("sample.jsonl.zst");

            var missing = Wf("corpus", "show", "nothing-here", "--container", container);
            missing.Exit.Should().Be(1);
            missing.Err.Should().Contain("corpus 'nothing-here' is not registered").And.Contain("wf corpus upload nothing-here");

            foreach (var bad in new[] { "../escape", "Upper", "blobs", "a/b" })
            {
                var refused = Wf("corpus", "upload", bad, sample, "--container", container, "--no-stats");
                refused.Exit.Should().Be(1, bad);
                refused.Err.Should().Contain("corpus name", bad);
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING", previous);
        }
    }

    [Fact]
    public async Task Replacing_a_corpus_an_archived_run_read_is_refused_and_the_same_files_again_are_fine()
    {
        await using var storage = await TestStorage.StartAsync();
        var container = "corpus-" + Guid.NewGuid().ToString("N")[..12];
        var sample = Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst");
        var other = Path.Combine(Path.GetTempPath(), $"wf-replace-{Guid.NewGuid():N}", "sample.jsonl.zst");
        Directory.CreateDirectory(Path.GetDirectoryName(other)!);
        File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "heldout.jsonl.zst"), other);
        var previous = Environment.GetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING");
        Environment.SetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING", storage.Connection.ConnectionString);
        try
        {
            Wf("corpus", "upload", "archived", sample, "--container", container).Exit.Should().Be(0);
            Wf("corpus", "upload", "scratch", sample, "--container", container).Exit.Should().Be(0);

            // An archived run that read 'archived' (a registered corpus: no local data paths recorded).
            var store = await BlobArtifactStore.OpenAsync(storage.Connection, container);
            var yaml = "name: corpus-exp\nprofile: smoke\nmodel: { base: tiny }\ndata: { corpus: archived, token_budget: 16K, context: 256, tokenizer: gpt2 }\n";
            var spec = Workflows.Experiments.Validation.ExperimentLoader.LoadText("corpus-exp.yaml", yaml).Require();
            await new Workflows.Artifacts.Runs.RunRecordStore(store).CreateAsync(new Workflows.Artifacts.Runs.RunRecord
            {
                RunId = "run-archived-1",
                ExperimentName = "corpus-exp",
                ExperimentHash = Workflows.Experiments.Spec.CanonicalForm.Hash(spec),
                CodeCommit = "0000000",
                SubmittedAt = DateTimeOffset.UtcNow,
                DataPaths = [],
            }, yaml);
            await new Workflows.GitOps.Archive.BlobArchiveIndex(store).RecordAsync(
                [new Workflows.GitOps.Archive.ArchivedExperiment("corpus-exp", "experiments/corpus-exp.yaml", Workflows.Experiments.Spec.CanonicalForm.Hash(spec), ["run-archived-1"])]);

            var refused = Wf("corpus", "upload", "archived", other, "--replace", "--container", container);
            var same = Wf("corpus", "upload", "archived", sample, "--replace", "--container", container);
            var unused = Wf("corpus", "upload", "scratch", other, "--replace", "--container", container);

            refused.Exit.Should().Be(1, refused.Out);
            refused.Err.Should().Contain("corpus 'archived' is read by archived run(s) run-archived-1 (corpus-exp, training data)")
                .And.Contain("wf corpus upload archived-v2");
            (await new CorpusRegistry(store).TryGetAsync("archived"))!.Files.Single().Sha256
                .Should().Be(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(sample))), "the name still means what the run read");
            same.Exit.Should().Be(0, same.Err + same.Out);
            same.Out.Should().Contain("manifest unchanged");
            unused.Exit.Should().Be(0, "no archived run reads 'scratch': --replace works as before");
        }
        finally
        {
            Environment.SetEnvironmentVariable("WF_STORAGE_CONNECTION_STRING", previous);
            Directory.Delete(Path.GetDirectoryName(other)!, recursive: true);
        }
    }
}
