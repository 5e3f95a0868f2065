using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Corpora;
using Workflows.Artifacts.Store;
using Workflows.DataPrep.Corpus;
using Workflows.Engine.Hosting;
using Workflows.Experiments.Planning;
using Workflows.GitOps.Archive;

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

            Each upload also measures the corpus's length distributions per source (corpora/NAME/stats.json in the
            store, and corpora/NAME.stats.json here to commit), which 'wf plan' uses; 'wf corpus stats' measures local
            files without uploading.

            Example:
              wf corpus upload sample samples/slimpajama-pd/sample.jsonl.zst --tokenizer gpt2
              wf corpus list
              wf corpus show sample
              wf corpus stats --name sample --tokenizer gpt2 --out corpora/sample.stats.json samples/slimpajama-pd/
            """);
        command.Subcommands.Add(Upload(cli));
        command.Subcommands.Add(List(cli));
        command.Subcommands.Add(Show(cli));
        command.Subcommands.Add(Stats(cli));
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
        var replace = new Option<bool>("--replace") { Description = "Point an already registered name at these files (refused while an archived run reads the corpus: wf rerun must find what it read)." };
        var container = ContainerOption();
        var tokenizer = TokenizerOption();
        var noStats = new Option<bool>("--no-stats") { Description = "Register the files without measuring their length statistics." };
        var statsOut = new Option<string?>("--stats-out") { Description = "Where to write the statistics locally. Default: corpora/NAME.stats.json (commit it: the PR's plan reads it)." };
        var command = new Command("upload", """
            Upload every input file content-addressed (skipped when the store holds that SHA-256 already), then register
            the corpus manifest, last: the name only appears once all its files are stored. Keys are the files' paths
            relative to the deepest common folder, exactly as for data.paths, so a corpus run and a local-paths run of the
            same files share cached measurements and shards.
            Then measure the length distributions per source with the tokenizer (each file once: cached by its SHA-256
            in the store and on this machine) for 'wf plan', stored as corpora/NAME/stats.json and written to
            corpora/NAME.stats.json here.

            Example:
              wf corpus upload slimpajama /data/slimpajama/train --tokenizer /models/llama-2/tokenizer.model
              wf corpus upload sample samples/slimpajama-pd/sample.jsonl.zst --tokenizer gpt2
            """)
        {
            name, inputs, replace, container, tokenizer, noStats, statsOut,
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
                // A replacement that changes what an archived run read is refused (the same files again are no change).
                if (parse.GetValue(replace) && await registry.TryGetAsync(corpus, ct) is { } current
                    && await ArchivedCorpora.UsesAsync(registry.Store, corpus, ct) is { Count: > 0 } uses
                    && !current.Files.Select(f => (f.Key, f.Sha256)).SequenceEqual(files.Select(f => (f.Key, CorpusMeasurer.Sha256Of(f.Path)))))
                {
                    cli.Err.WriteLine($"error: corpus '{corpus}' is read by archived run(s) {string.Join(", ", uses.Select(u => $"{u.RunId} ({u.Experiment}, {u.Role})"))}: "
                        + $"replacing it would leave them impossible to rerun exactly. Register these files under a new name (e.g. 'wf corpus upload {corpus}-v2 ...') and name that in new experiments.");
                    return ExitCodes.InvalidInput;
                }

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
                if (parse.GetValue(noStats))
                {
                    return ExitCodes.Ok;
                }

                DataPrep.Tokenization.ITokenizer tok;
                try
                {
                    tok = TokenizerResolver.Resolve(parse.GetValue(tokenizer) ?? "llama-2", null, Directory.GetCurrentDirectory());
                }
                catch (Exception e) when (e is FileNotFoundException or ArgumentException or InvalidDataException)
                {
                    cli.Err.WriteLine($"warning: length statistics not measured: {e.Message}. Measure later with 'wf corpus stats', or pass --no-stats.");
                    return ExitCodes.Ok;
                }

                var cache = new TieredStatisticsCache(CorpusStatisticsCli.UserCache(), new BlobStatisticsCache(registry));
                var stats = await CorpusStatisticsCli.MeasureAsync(cli, corpus, files, tok, cache, Environment.ProcessorCount, ct);
                await registry.WriteTextAsync(CorpusRegistry.StatisticsName(corpus), stats.ToJson(), ct);
                var local = parse.GetValue(statsOut) ?? Path.Combine(CorpusStatisticsFiles.Folder, CorpusStatisticsFiles.FileName(corpus));
                CorpusStatisticsCli.Write(local, stats);
                CorpusStatisticsCli.Print(cli, stats);
                cli.Out.WriteLine($"statistics: {CorpusRegistry.StatisticsName(corpus)} in the store, {local} here (commit it beside experiments/: 'wf plan' and the PR's plan read it)");
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

    private static Option<string?> TokenizerOption() => new("--tokenizer")
    {
        Description = $"Tokenizer the lengths are measured with: llama-2 (the default; its tokenizer.model from ${TokenizerResolver.LlamaEnvironmentVariable}), gpt2, or a path to a SentencePiece tokenizer.model.",
    };

    private static Command Stats(CliContext cli)
    {
        var inputs = new Argument<string[]>("inputs") { Description = "Files or folders (.jsonl.zst, .jsonl, .jsonl.gz, .parquet; folders recursively).", Arity = ArgumentArity.OneOrMore };
        var name = new Option<string>("--name") { Description = "Name recorded in the statistics (what data.corpus says; 'slimpajama…' shows the paper's Fig. 2 beside the plan).", DefaultValueFactory = _ => "local" };
        var tokenizer = TokenizerOption();
        var output = new Option<string?>("--out") { Description = "Write the statistics as JSON (e.g. corpora/NAME.stats.json, which 'wf plan' finds; or pass it with --corpus-stats)." };
        var threads = new Option<int>("--threads") { Description = "Tokenizer threads.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("stats", """
            Measure local files' length distributions per source, as 'wf corpus upload' does, without storage: every
            document is tokenized once (data prep's measure pass without its token cache) and binned by token and
            character length; each file's result is cached on this machine by its SHA-256, tokenizer and reader
            settings. Prints documents, tokens and the share of tokens in documents of 4K tokens or more per source.

            Example:
              wf corpus stats --name slimpajama --tokenizer /models/llama-2/tokenizer.model --out corpora/slimpajama.stats.json /data/slimpajama/train
              wf plan --corpus-stats corpora/slimpajama.stats.json experiments/per-source-5b-80k.yaml
            """)
        {
            inputs, name, tokenizer, output, threads,
        };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var files = InputFile.Discover(parse.GetValue(inputs)!);
                if (files.Count == 0)
                {
                    cli.Err.WriteLine("error: no corpus files found (.jsonl.zst, .jsonl, .jsonl.gz, .parquet)");
                    return ExitCodes.InvalidInput;
                }

                var tok = TokenizerResolver.Resolve(parse.GetValue(tokenizer) ?? "llama-2", null, Directory.GetCurrentDirectory());
                var stats = await CorpusStatisticsCli.MeasureAsync(cli, parse.GetValue(name)!, files, tok, CorpusStatisticsCli.UserCache(), parse.GetValue(threads), ct);
                CorpusStatisticsCli.Print(cli, stats);
                if (parse.GetValue(output) is { } path)
                {
                    CorpusStatisticsCli.Write(path, stats);
                    cli.Out.WriteLine($"wrote {path}");
                }

                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is CorpusFormatException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
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
