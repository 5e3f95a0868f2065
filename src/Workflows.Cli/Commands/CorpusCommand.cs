using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Corpora;
using Workflows.Artifacts.Store;
using Workflows.DataPrep.Corpus;
using Workflows.Engine.Hosting;

namespace Workflows.Cli.Commands;

/// <summary><c>wf corpus upload|list|show</c>: register input files in the engine's blob store so remote workers can read them.</summary>
public static class CorpusCommand
{
    public static Command Create(CliContext cli)
    {
        var command = new Command("corpus", """
            Registered corpora: input files stored in the engine's blob container, so an experiment that names
            'data.corpus: NAME' and no data.paths runs on any worker (Kubernetes, CI) without shared local paths.
            Files are stored once by SHA-256 under corpora/blobs/; corpora/NAME/manifest.json lists each file's key,
            SHA-256 and size. Storage: WF_STORAGE_CONNECTION_STRING, else a local Azurite; container --container
            (default $WF_ARTIFACTS_CONTAINER or 'workflows').

            Example:
              wf corpus upload sample samples/slimpajama-pd/sample.jsonl.zst
              wf corpus list
              wf corpus show sample
            """);
        command.Subcommands.Add(Upload(cli));
        command.Subcommands.Add(List(cli));
        command.Subcommands.Add(Show(cli));
        return command;
    }

    private static Option<string> ContainerOption() => new("--container")
    {
        Description = $"Blob container of the engine's artifacts. Default: ${WorkerEnvironment.ArtifactsContainerVariable} or '{WorkerEnvironment.DefaultContainer}'.",
        DefaultValueFactory = _ => WorkerEnvironment.Read(WorkerRole.Client).ArtifactsContainer,
    };

    private static Argument<string> NameArgument() => new("name") { Description = "Corpus name (what data.corpus says): lower-case letters, digits, '-'." };

    private static Command Upload(CliContext cli)
    {
        var name = NameArgument();
        var inputs = new Argument<string[]>("inputs") { Description = "Files or folders (.jsonl.zst, .jsonl, .jsonl.gz, .parquet; folders recursively).", Arity = ArgumentArity.OneOrMore };
        var replace = new Option<bool>("--replace") { Description = "Point an already registered name at these files." };
        var container = ContainerOption();
        var command = new Command("upload", """
            Upload every input file content-addressed (skipped when the store holds that SHA-256 already), then register
            the corpus manifest, last: the name only appears once all its files are stored. Keys are the files' paths
            relative to the deepest common folder, exactly as for data.paths, so a corpus run and a local-paths run of the
            same files share cached measurements and shards.

            Example:
              wf corpus upload sample samples/slimpajama-pd/sample.jsonl.zst
            """)
        {
            name, inputs, replace, container,
        };
        command.SetAction(async (parse, ct) =>
        {
            var corpus = parse.GetValue(name)!;
            if (CorpusRegistry.ExplainName(corpus) is { } problem)
            {
                cli.Err.WriteLine($"error: {problem}");
                return ExitCodes.InvalidInput;
            }

            IReadOnlyList<InputFile> files;
            try
            {
                files = InputFile.Discover(parse.GetValue(inputs)!);
                var missing = files.FirstOrDefault(f => !File.Exists(f.Path));
                if (missing is not null || files.Count == 0)
                {
                    cli.Err.WriteLine($"error: {(missing is null ? "no corpus files found" : $"{missing.Path} does not exist")}");
                    return ExitCodes.InvalidInput;
                }
            }
            catch (ArgumentException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            return await WithRegistry(cli, parse.GetValue(container)!, async registry =>
            {
                var watch = Stopwatch.StartNew();
                CorpusUpload upload;
                try
                {
                    upload = await registry.UploadAsync(corpus, [.. files.Select(f => (f.Key, f.Path))], parse.GetValue(replace), null, ct);
                }
                catch (Exception e) when (e is InvalidOperationException or InvalidDataException)
                {
                    cli.Err.WriteLine($"error: {e.Message}");
                    return ExitCodes.InvalidInput;
                }

                var seconds = watch.Elapsed.TotalSeconds;
                foreach (var f in upload.Files)
                {
                    cli.Out.WriteLine($"{(f.Skipped ? "stored " : "uploaded")}  {f.File.Sha256[..12]}  {f.File.Bytes,14:N0}  {f.File.Key}");
                }

                var sent = upload.Files.Where(f => !f.Skipped).Sum(f => f.File.Bytes);
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"corpus {corpus}: {upload.Manifest.Files.Count} file(s), {upload.Manifest.Bytes:N0} bytes; uploaded {sent:N0} bytes in {seconds:F1} s ({sent / 1e6 / Math.Max(seconds, 1e-3):F1} MB/s, hashing included){(upload.ManifestUnchanged ? "; manifest unchanged" : "")}"));
                cli.Out.WriteLine($"registered: {CorpusRegistry.ManifestName(corpus)} (experiments use 'data.corpus: {corpus}' with no data.paths)");
                return ExitCodes.Ok;
            }, ct);
        });
        return command;
    }

    private static Command List(CliContext cli)
    {
        var container = ContainerOption();
        var command = new Command("list", """
            List the registered corpora: name, files, bytes.

            Example:
              wf corpus list
            """)
        {
            container,
        };
        command.SetAction(async (parse, ct) => await WithRegistry(cli, parse.GetValue(container)!, async registry =>
        {
            var names = await registry.ListAsync(ct);
            if (names.Count == 0)
            {
                cli.Out.WriteLine("no corpus is registered: 'wf corpus upload NAME DIR_OR_FILES...'");
            }

            foreach (var n in names)
            {
                var manifest = await registry.TryGetAsync(n, ct);
                cli.Out.WriteLine(manifest is null ? n : $"{n,-24} {manifest.Files.Count,6} file(s) {manifest.Bytes,16:N0} bytes  registered {manifest.RegisteredAt:u}");
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static Command Show(CliContext cli)
    {
        var name = NameArgument();
        var container = ContainerOption();
        var command = new Command("show", """
            Show a registered corpus: each file's key, SHA-256 and size.

            Example:
              wf corpus show sample
            """)
        {
            name, container,
        };
        command.SetAction(async (parse, ct) =>
        {
            var corpus = parse.GetValue(name)!;
            if (CorpusRegistry.ExplainName(corpus) is { } problem)
            {
                cli.Err.WriteLine($"error: {problem}");
                return ExitCodes.InvalidInput;
            }

            return await WithRegistry(cli, parse.GetValue(container)!, async registry =>
            {
                if (await registry.TryGetAsync(corpus, ct) is not { } manifest)
                {
                    cli.Err.WriteLine($"error: {new CorpusNotFoundException(corpus).Message}");
                    return ExitCodes.InvalidInput;
                }

                cli.Out.WriteLine($"corpus {manifest.Name}: {manifest.Files.Count} file(s), {manifest.Bytes:N0} bytes, registered {manifest.RegisteredAt:u} ({CorpusRegistry.ManifestName(corpus)})");
                foreach (var f in manifest.Files)
                {
                    cli.Out.WriteLine($"  {f.Sha256}  {f.Bytes,14:N0}  {f.Key}");
                }

                return ExitCodes.Ok;
            }, ct);
        });
        return command;
    }

    private static async Task<int> WithRegistry(CliContext cli, string container, Func<CorpusRegistry, Task<int>> action, CancellationToken ct)
    {
        await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
        var store = await BlobArtifactStore.OpenAsync(storage.Connection, container, cancellationToken: ct);
        return await action(new CorpusRegistry(store));
    }
}
