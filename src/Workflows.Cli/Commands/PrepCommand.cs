using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Statistics;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

public static class PrepCommand
{
    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment file whose data section to prepare." };
        var inputs = new Option<string[]>("--input")
        {
            Description = "Input files or folders (.jsonl.zst, .jsonl, .jsonl.gz, .parquet). Default: the experiment's data.paths.",
            AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string>("--out") { Description = "Output folder for shards, statistics and manifest.", Required = true };
        var shards = new Option<int>("--shards") { Description = "Number of shard tasks sharing the work (run each with its own --shard).", DefaultValueFactory = _ => 1 };
        var shard = new Option<int>("--shard") { Description = "Which shard task this process is (0-based).", DefaultValueFactory = _ => 0 };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Path to a SentencePiece tokenizer.model (overrides data.tokenizer; or set WF_LLAMA2_TOKENIZER)." };
        var skip = new Option<bool>("--skip-bad-records") { Description = "Count and skip malformed lines instead of stopping at the first one." };
        var threads = new Option<int>("--threads") { Description = "Worker threads (never changes the output).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("prep", """
            Prepare an experiment's training data without the engine: read the inputs, tokenize, select documents by
            the experiment's upsampling mode, pack into sequences of exactly the training context, and write Parquet
            shards, statistics (JSON + PNG) and, last, manifest.json with the SHA-256 of every shard.
            The output is byte-identical whatever --threads, and whether one process or N (--shards N --shard K, the
            tasks sharing --out) does the work.

            Examples:
              wf prep experiments/smoke.yaml --out out/smoke-data
              wf prep experiments/per-source-5b-80k.yaml --input /data/slimpajama/train --out /data/prep --tokenizer llama/tokenizer.model
              wf prep EXP --input DIR --out OUT --shards 3 --shard 0     # and --shard 1, --shard 2 elsewhere
            """)
        {
            file, inputs, output, shards, shard, tokenizer, skip, threads,
        };
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return ExitCodes.InvalidInput;
            }

            try
            {
                var tok = TokenizerResolver.Resolve(spec.Data.Tokenizer, parse.GetValue(tokenizer), Path.GetDirectoryName(Path.GetFullPath(path))!);
                var given = parse.GetValue(inputs) ?? [];
                var inputPaths = given.Length > 0 ? given : SpecMapping.InputPaths(spec, path);
                if (inputPaths.Count == 0)
                {
                    cli.Err.WriteLine($"error: {path}: data.corpus '{spec.Data.Corpus}' has no local files: pass --input PATH (or list data.paths in the experiment)");
                    return ExitCodes.Usage;
                }

                var files = InputFile.Discover(inputPaths);
                var options = SpecMapping.ToDataPrepOptions(spec, tok) with
                {
                    Threads = Math.Max(1, parse.GetValue(threads)),
                    Reader = new CorpusReaderOptions { SkipBadRecords = parse.GetValue(skip) },
                };
                var outDir = parse.GetValue(output)!;
                var watch = Stopwatch.StartNew();
                var result = await RunWithProgress(cli, () => new ProgressPrinter(cli, watch), progress =>
                    DataPrepPipeline.RunAsync(options, files, outDir, parse.GetValue(shards), parse.GetValue(shard), tok, progress, ct));
                PrintSummary(cli, outDir, result, watch.Elapsed);
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is CorpusFormatException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or NotSupportedException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return command;
    }

    private static async Task<DataPrepResult> RunWithProgress(CliContext cli, Func<ProgressPrinter> plain, Func<IProgress<DataPrepProgress>, Task<DataPrepResult>> run)
    {
        if (!cli.Colour)
        {
            var printer = plain();
            return await run(printer);
        }

        DataPrepResult? result = null;
        await cli.Console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var measure = ctx.AddTask("measure (read + tokenize)");
                var write = ctx.AddTask("write shards");
                var started = Stopwatch.StartNew();
                var progress = new SynchronousProgress<DataPrepProgress>(p =>
                {
                    var rate = p.Tokens / Math.Max(0.001, started.Elapsed.TotalSeconds);
                    measure.Description = $"measure: {p.Documents:N0} docs, {p.Tokens:N0} tokens, {rate / 1e6:0.00}M tokens/s";
                    measure.MaxValue = Math.Max(1, p.FilesTotal);
                    measure.Value = p.FilesDone;
                    if (p.ShardsTotal > 0)
                    {
                        write.MaxValue = p.ShardsTotal;
                        write.Value = p.ShardsDone;
                        write.Description = $"write: {p.ShardsDone}/{p.ShardsTotal} shards";
                    }
                });
                result = await run(progress);
                measure.Value = measure.MaxValue;
                write.Value = write.MaxValue;
            });
        return result!;
    }

    /// <summary>Plain progress for logs: a line per phase change and at most one every 5 seconds.</summary>
    private sealed class ProgressPrinter(CliContext cli, Stopwatch watch) : IProgress<DataPrepProgress>
    {
        private DataPrepPhase? lastPhase;
        private TimeSpan lastPrint;

        public void Report(DataPrepProgress p)
        {
            lock (this)
            {
                if (p.Phase == lastPhase && watch.Elapsed - lastPrint < TimeSpan.FromSeconds(5))
                {
                    return;
                }

                lastPhase = p.Phase;
                lastPrint = watch.Elapsed;
                var rate = p.Tokens / Math.Max(0.001, watch.Elapsed.TotalSeconds);
                var shardsPart = p.ShardsTotal > 0 ? $", shards {p.ShardsDone}/{p.ShardsTotal}" : "";
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"[{watch.Elapsed:hh\\:mm\\:ss}] {p.Phase.ToString().ToLowerInvariant()}: files {p.FilesDone}/{p.FilesTotal}, {p.Documents:N0} docs, {p.Tokens:N0} tokens ({rate / 1e6:0.00}M tokens/s){shardsPart}"));
            }
        }
    }

    private static void PrintSummary(CliContext cli, string outDir, DataPrepResult result, TimeSpan elapsed)
    {
        var statsPath = Path.Combine(outDir, DataPrepPipeline.StatisticsFileName);
        if (result.Manifest is null || !File.Exists(statsPath))
        {
            cli.Out.WriteLine($"wrote {result.WrittenShards.Count} shard(s) in {elapsed.TotalSeconds:0.0}s; the manifest is published by the last shard task to finish");
            return;
        }

        var stats = JsonSerializer.Deserialize<DataPrepStatistics>(File.ReadAllText(statsPath), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        var table = new Table { Title = new TableTitle($"{stats.Mode}: {stats.PackedSequences:N0} sequences x {result.Manifest.ContextLength:N0} tokens"), Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (var h in new[] { "source", "docs before", "docs after", "tokens after", "share (requested)", "long-token share before -> after" })
        {
            table.AddColumn(h);
        }

        foreach (var after in stats.After.Sources)
        {
            var before = stats.Before.Sources.FirstOrDefault(s => s.Source == after.Source);
            if (after.Documents == 0 && (before?.Documents ?? 0) == 0)
            {
                continue;
            }

            table.AddRow(
                after.Source.Replace("RedPajama", "", StringComparison.Ordinal),
                (before?.Documents ?? 0).ToString("N0", CultureInfo.InvariantCulture),
                after.Documents.ToString("N0", CultureInfo.InvariantCulture),
                after.Tokens.ToString("N0", CultureInfo.InvariantCulture),
                string.Create(CultureInfo.InvariantCulture, $"{after.TokenShare:P1} ({(after.RequestedShare is { } r ? r.ToString("P1", CultureInfo.InvariantCulture) : "-")})"),
                string.Create(CultureInfo.InvariantCulture, $"{before?.LongTokenShare ?? 0:P1} -> {after.LongTokenShare:P1}"));
        }

        cli.Console.Write(table);
        var rate = stats.Before.Tokens / Math.Max(0.001, elapsed.TotalSeconds);
        cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{result.Manifest.ShardCount} shard(s), {result.Manifest.Tokens:N0} tokens, max mix deviation {stats.MaxMixDeviation * 100:0.00} pp, {elapsed.TotalSeconds:0.0}s ({rate / 1e6:0.00}M input tokens/s)"));
        cli.Out.WriteLine($"manifest: {Path.Combine(outDir, DataPrepManifest.FileName)}");
    }
}
