using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Corpora;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine.Corpora;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

/// <summary>
/// Registered corpora through the real engine: a run that names <c>data.corpus</c> and no paths reads the corpus from
/// blob storage and lands on exactly the output a local-paths run of the same file produces.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class CorpusTests(EngineFixture engine) : IDisposable
{
    private const string SmokePaths = "  paths: [../samples/slimpajama-pd/sample.jsonl.zst]";
    private const string HeldOutPaths = "    paths: [../samples/slimpajama-pd/heldout.jsonl.zst]";
    private readonly string _folder = Directory.CreateTempSubdirectory("wf-corpus-tests-").FullName;

    private CorpusRegistry Registry => new(engine.Host.Services.Store);

    [Fact]
    public async Task A_corpus_run_reads_the_registered_blob_and_has_the_same_key_and_content_as_a_local_paths_run_of_that_file()
    {
        // The shipped sample under a name of this test's own, so its measurement is not cached by another test: the
        // corpus run must download and measure it.
        var file = Path.Combine(_folder, "sample-corpus-test.jsonl.zst");
        File.Copy(Path.Combine(engine.RepositoryRoot, "samples", "slimpajama-pd", "sample.jsonl.zst"), file);
        var corpus = "sample-" + Guid.NewGuid().ToString("N")[..8];
        var upload = await Registry.UploadAsync(corpus, [("sample-corpus-test.jsonl.zst", file)]);
        var registered = upload.Manifest.Files.Should().ContainSingle().Subject;

        var fromCorpus = await engine.RunAsync(Request($"  corpus: {corpus}", "corpus.yaml"));

        fromCorpus.Record.Status.Should().Be(RunStatus.Succeeded, fromCorpus.Record.Error);
        var corpusOutput = fromCorpus.Result!.Outputs["prepare-data"];
        corpusOutput.Cached.Should().BeFalse();
        var cached = Path.Combine(engine.Host.Services.CacheFolder(CorpusInputs.CacheKind, registered.Sha256), "sample-corpus-test.jsonl.zst");
        File.ReadAllBytes(cached).Should().Equal(File.ReadAllBytes(file), "measure read the corpus through a verified local copy");

        // The same experiment over the local file: same key, so the corpus run's output is reused as is...
        var localRequest = Request($"  paths: [{file}]", "local.yaml");
        var fromPaths = await engine.RunAsync(localRequest);
        fromPaths.Record.Status.Should().Be(RunStatus.Succeeded, fromPaths.Record.Error);
        var pathsOutput = fromPaths.Result!.Outputs["prepare-data"];
        pathsOutput.KeyHash.Should().Be(corpusOutput.KeyHash);
        pathsOutput.Cached.Should().BeTrue();
        pathsOutput.ContentHash.Should().Be(corpusOutput.ContentHash);

        // ...and recomputed from the local file it reproduces the corpus run's shards bit for bit (publish compares them).
        var runId = await engine.Client.SubmitAsync(localRequest, null, new SubmitOptions { RecomputeFrom = "prepare-data" });
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var recomputed = await engine.Client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(250), cancellationToken: timeout.Token);
        recomputed.Record.Status.Should().Be(RunStatus.Succeeded, recomputed.Record.Error);
        recomputed.Result!.Outputs["prepare-data"].Cached.Should().BeFalse();
        recomputed.Result.Outputs["prepare-data"].ContentHash.Should().Be(corpusOutput.ContentHash);
        var manifest = await engine.Host.Services.Manifests.TryGetAsync(ArtifactKey.FromParts(PrepareDataStep.Type, PrepareDataStep.Version, corpusOutput.KeyHash));
        manifest!.Entries.Count(e => e.Path.EndsWith(".parquet", StringComparison.Ordinal)).Should().Be(2);
    }

    [Fact]
    public async Task A_run_on_an_unregistered_corpus_fails_naming_the_corpus_and_the_command_that_registers_it()
    {
        var corpus = "missing-" + Guid.NewGuid().ToString("N")[..8];

        var view = await engine.RunAsync(Request($"  corpus: {corpus}", "missing.yaml"));

        view.Record.Status.Should().Be(RunStatus.Failed);
        view.Record.Error.Should().Contain($"corpus '{corpus}' is not registered").And.Contain($"wf corpus upload {corpus}");
    }

    [Fact]
    public async Task A_tampered_corpus_blob_is_caught_by_its_SHA256_on_download_and_leaves_no_local_copy()
    {
        var file = Path.Combine(_folder, "tamper.jsonl");
        await File.WriteAllTextAsync(file, $"{{\"text\":\"{Guid.NewGuid()}\",\"meta\":{{\"redpajama_set_name\":\"RedPajamaBook\"}}}}\n");
        var corpus = "tamper-" + Guid.NewGuid().ToString("N")[..8];
        var registered = (await Registry.UploadAsync(corpus, [("tamper.jsonl", file)])).Manifest.Files.Single();
        using (var other = new MemoryStream("{\"text\":\"not what was registered\"}\n"u8.ToArray()))
        {
            await engine.Host.Services.Store.PutAsync(registered.Blob, other);
        }

        var act = () => CorpusInputs.LocalPathAsync(engine.Host.Services, registered);

        (await act.Should().ThrowAsync<ArtifactCorruptedException>()).Which.ExpectedSha256.Should().Be(registered.Sha256);
        var folder = engine.Host.Services.CacheFolder(CorpusInputs.CacheKind, registered.Sha256);
        (Directory.Exists(folder) ? Directory.GetFiles(folder) : []).Should().BeEmpty("only a verified download becomes a cached file");

        // Through the engine the run fails at measure with the same diagnosis.
        var view = await engine.RunAsync(Request($"  corpus: {corpus}", "tamper.yaml"));
        view.Record.Status.Should().Be(RunStatus.Failed);
        view.Record.Error.Should().Contain("corrupted").And.Contain(registered.Sha256);
    }

    /// <summary>smoke.yaml with its data source replaced, 2 shards (a key no other test uses), prepare-data only, one attempt.</summary>
    private SubmitRequest Request(string dataSourceLine, string fileName)
    {
        var yaml = File.ReadAllText(Path.Combine(engine.RepositoryRoot, "experiments", "smoke.yaml"));
        yaml.Should().Contain(SmokePaths).And.Contain("  shards: 4");
        var path = Path.Combine(_folder, fileName);
        // The held-out file beside the copy: outside a git checkout an experiment may only name paths in its own folder.
        var heldOut = Path.Combine(_folder, "heldout.jsonl.zst");
        if (!File.Exists(heldOut))
        {
            File.Copy(Path.Combine(engine.RepositoryRoot, "samples", "slimpajama-pd", "heldout.jsonl.zst"), heldOut);
        }

        yaml.Should().Contain(HeldOutPaths);
        File.WriteAllText(path, yaml.Replace(SmokePaths, dataSourceLine, StringComparison.Ordinal).Replace("  shards: 4", "  shards: 2", StringComparison.Ordinal)
            .Replace(HeldOutPaths, "    paths: [heldout.jsonl.zst]", StringComparison.Ordinal));
        var request = EngineClient.Prepare(path, Path.Combine(engine.RepositoryRoot, "workflows"), "test");
        var step = request.Workflow.Steps.Single(s => s.Type == PrepareDataStep.Type) with { MaxAttempts = 1 };
        return request with { Workflow = request.Workflow with { Steps = [step] } };
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
