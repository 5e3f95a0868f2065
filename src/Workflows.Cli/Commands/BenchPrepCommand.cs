using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Tokenization;

namespace Workflows.Cli.Commands;

/// <summary>
/// wf bench prep: our tokenizer next to SentencePiece C++ (spm_encode) on the same text, single thread and all cores;
/// end-to-end data prep tokens/s per core; and peak memory of end-to-end prep at 1x and 4x the input, each measured in
/// a child process so one run's memory cannot hide in another's.
/// </summary>
public static class BenchPrepCommand
{
    public static Command Create(CliContext cli)
    {
        var input = new Option<string>("--input") { Description = "Corpus files or folder (default: ../shared/corpus/slimpajama-mini/train)." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "LLaMA-2 tokenizer.model (default: $WF_LLAMA2_TOKENIZER, else ../shared/corpus/tokenizers/llama2/tokenizer.model)." };
        var spm = new Option<string>("--spm-encode") { Description = "The SentencePiece C++ encoder to compare with (Debian package 'sentencepiece').", DefaultValueFactory = _ => "spm_encode" };
        var skipMemory = new Option<bool>("--skip-memory") { Description = "Skip the 1x/4x peak-memory runs." };
        var e2eOnly = new Option<int>("--e2e-only") { Description = "Internal: run only end-to-end prep over the input replicated N times and print JSON (used for the memory runs).", Hidden = true };
        var json = new Option<bool>("--json") { Description = "Print the results as JSON." };
        var command = new Command("prep", """
            Data-prep benchmark on a SlimPajama-format corpus (default: the shared train split), printing side by side:
              - tokenization alone: ours vs spm_encode (SentencePiece C++) on the same lines, 1 thread and all cores
                (all cores for spm_encode = one process per core over an equal split of the lines);
              - end-to-end prep (read, tokenize, per-source selection, pack at 80K, Parquet, statistics, manifest)
                in tokens/s and tokens/s per core, against tokenization alone;
              - peak resident memory of end-to-end prep at 1x and 4x the input (child processes).
            Needs Debian's 'sentencepiece' package for the spm_encode column (apt-get install sentencepiece).

            Example:
              wf bench prep
              wf bench prep --input /data/slimpajama/chunk1 --tokenizer llama/tokenizer.model --json
            """)
        {
            input, tokenizer, spm, skipMemory, e2eOnly, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            var shared = Path.GetFullPath(Path.Combine("..", "shared", "corpus"));
            var inputPath = parse.GetValue(input) ?? Path.Combine(shared, "slimpajama-mini", "train");
            var modelPath = parse.GetValue(tokenizer) ?? Environment.GetEnvironmentVariable(TokenizerResolver.LlamaEnvironmentVariable)
                ?? Path.Combine(shared, "tokenizers", "llama2", "tokenizer.model");
            if (!File.Exists(modelPath) || !(File.Exists(inputPath) || Directory.Exists(inputPath)))
            {
                cli.Err.WriteLine($"error: needs a corpus ({inputPath}) and LLaMA-2's tokenizer.model ({modelPath}); pass --input and --tokenizer");
                return ExitCodes.Usage;
            }

            var tok = LlamaSentencePieceTokenizer.Load(modelPath);
            var files = InputFile.Discover([inputPath]);
            if (parse.GetValue(e2eOnly) is > 0 and var copies)
            {
                var e2e = await EndToEnd(files, tok, copies, ct);
                cli.Out.WriteLine(JsonSerializer.Serialize(e2e));
                return ExitCodes.Ok;
            }

            var readClock = Stopwatch.StartNew();
            var documents = files.SelectMany(f => CorpusReader.Read(f, new CorpusReaderOptions(), new BadRecordLog(skip: false))).Select(d => d.Text).ToList();
            var readSeconds = readClock.Elapsed.TotalSeconds; // one thread: decompress + split lines + JSON + UTF-16 text
            var lines = documents.SelectMany(d => d.Split('\n')).Where(l => l.Length > 0).ToList();
            var cores = Environment.ProcessorCount;
            cli.Out.WriteLine($"corpus: {files.Count} files, {documents.Count:N0} documents, {lines.Count:N0} lines; {cores} cores; {Environment.OSVersion}");

            // Warm the tokenizer's tables once so both single-thread runs start alike (its word cache is per thread).
            TokenizerBenchmark.Measure(tok, documents.Take(20).ToList());
            var oursLines1 = TokenizerBenchmark.Measure(tok, lines, 1);
            var oursLinesN = TokenizerBenchmark.Measure(tok, lines, cores);
            var oursDocs1 = TokenizerBenchmark.Measure(tok, documents, 1);
            var oursDocsN = TokenizerBenchmark.Measure(tok, documents, cores);
            var spm1 = await SpmEncode(parse.GetValue(spm)!, modelPath, lines, 1, ct);
            var spmN = await SpmEncode(parse.GetValue(spm)!, modelPath, lines, cores, ct);
            var e2eRun = await EndToEnd(files, tok, 1, ct);

            MemoryRun? one = null, four = null;
            if (!parse.GetValue(skipMemory))
            {
                one = await ChildMemoryRun(inputPath, modelPath, 1, ct);
                four = await ChildMemoryRun(inputPath, modelPath, 4, ct);
            }

            var result = new
            {
                machine = $"{cores} cores, {Environment.OSVersion}",
                tokenize_lines_ours_1_thread = oursLines1.TokensPerSecond,
                tokenize_lines_ours_all_cores = oursLinesN.TokensPerSecond,
                tokenize_lines_spm_encode_1_process = spm1?.TokensPerSecond,
                tokenize_lines_spm_encode_all_cores = spmN?.TokensPerSecond,
                same_token_count = spm1 is null ? (bool?)null : spm1.Tokens == oursLines1.Tokens,
                tokenize_documents_ours_1_thread = oursDocs1.TokensPerSecond,
                tokenize_documents_ours_all_cores = oursDocsN.TokensPerSecond,
                read_documents_1_thread_tokens_per_second = oursDocs1.Tokens / readSeconds,
                end_to_end_tokens_per_second = e2eRun.TokensPerSecond,
                end_to_end_tokens_per_second_per_core = e2eRun.TokensPerSecond / cores,
                end_to_end_vs_tokenize_alone_all_cores = oursLinesN.TokensPerSecond / e2eRun.TokensPerSecond,
                end_to_end_vs_tokenize_documents_all_cores = oursDocsN.TokensPerSecond / e2eRun.TokensPerSecond,
                end_to_end_phase_seconds = e2eRun.PhaseSeconds,
                peak_rss_mib_1x = one?.PeakRssMiB,
                peak_rss_mib_4x = four?.PeakRssMiB,
            };
            if (parse.GetValue(json))
            {
                cli.Out.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }

            string M(double? tps) => tps is { } t ? (t / 1e6).ToString("0.000", CultureInfo.InvariantCulture) + "M tok/s" : "n/a (spm_encode not found)";
            cli.Out.WriteLine($"| measurement | ours | spm_encode (C++) |");
            cli.Out.WriteLine($"|---|---:|---:|");
            cli.Out.WriteLine($"| tokenize {oursLines1.Tokens:N0} tokens of lines, 1 thread | {M(oursLines1.TokensPerSecond)} | {M(spm1?.TokensPerSecond)} |");
            cli.Out.WriteLine($"| tokenize lines, {cores} cores | {M(oursLinesN.TokensPerSecond)} | {M(spmN?.TokensPerSecond)} |");
            cli.Out.WriteLine($"| identical token count | {(spm1 is null ? "n/a" : spm1.Tokens == oursLines1.Tokens ? "yes" : $"no ({spm1.Tokens:N0})")} | |");
            cli.Out.WriteLine($"| tokenize whole documents, 1 thread | {M(oursDocs1.TokensPerSecond)} | |");
            cli.Out.WriteLine($"| tokenize whole documents, {cores} cores | {M(oursDocsN.TokensPerSecond)} | |");
            cli.Out.WriteLine($"| read documents (decompress, JSON, text), 1 thread, in tokens/s | {M(oursDocs1.Tokens / readSeconds)} | |");
            cli.Out.WriteLine($"| end-to-end prep, {cores} threads ({e2eRun.Tokens:N0} tokens) | {M(e2eRun.TokensPerSecond)} = {M(e2eRun.TokensPerSecond / cores)} per core | |");
            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| end-to-end / tokenize alone (all cores) | {oursLinesN.TokensPerSecond / e2eRun.TokensPerSecond:0.00}x slower than lines, {oursDocsN.TokensPerSecond / e2eRun.TokensPerSecond:0.00}x than whole documents | |"));
            cli.Out.WriteLine($"| end-to-end phases (s) | {string.Join(", ", e2eRun.PhaseSeconds.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {p.Value:0.00}")))} | |");
            if (one is not null && four is not null)
            {
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| peak RSS, end-to-end prep, 1x / 4x input | {one.PeakRssMiB:N0} MiB / {four.PeakRssMiB:N0} MiB | |"));
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private sealed record Throughput(long Tokens, TimeSpan Elapsed)
    {
        public double TokensPerSecond => Tokens / Elapsed.TotalSeconds;
    }

    private sealed record MemoryRun(long Tokens, double Seconds, double PeakRssMiB, Dictionary<string, double> PhaseSeconds, Dictionary<string, double>? Heap = null)
    {
        public double TokensPerSecond => Tokens / Seconds;
    }

    private static async Task<Throughput?> SpmEncode(string spm, string model, IReadOnlyList<string> lines, int processes, CancellationToken ct)
    {
        var dir = Directory.CreateTempSubdirectory("wf-bench-spm-").FullName;
        try
        {
            var parts = Enumerable.Range(0, processes).Select(p => Path.Combine(dir, $"part-{p}.txt")).ToList();
            for (var p = 0; p < processes; p++)
            {
                await File.WriteAllLinesAsync(parts[p], lines.Where((_, i) => i % processes == p), ct);
            }

            var watch = Stopwatch.StartNew();
            var runs = parts.Select(async part =>
            {
                var info = new ProcessStartInfo(spm) { RedirectStandardOutput = true, RedirectStandardInput = false, UseShellExecute = false };
                info.ArgumentList.Add($"--model={model}");
                info.ArgumentList.Add("--output_format=id");
                info.ArgumentList.Add(part);
                using var process = Process.Start(info)!;
                long tokens = 0;
                while (await process.StandardOutput.ReadLineAsync(ct) is { } line)
                {
                    tokens += line.Length == 0 ? 0 : line.Count(c => c == ' ') + 1;
                }

                await process.WaitForExitAsync(ct);
                return process.ExitCode == 0 ? tokens : throw new InvalidOperationException($"{spm} exited with {process.ExitCode}");
            }).ToList();
            var total = (await Task.WhenAll(runs)).Sum();
            return new Throughput(total, watch.Elapsed);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<MemoryRun> EndToEnd(IReadOnlyList<InputFile> files, ITokenizer tok, int copies, CancellationToken ct)
    {
        var dir = Directory.CreateTempSubdirectory("wf-bench-prep-").FullName;
        try
        {
            // Copies are distinct inputs (own keys) of the same bytes: 4x the documents for the memory-flatness check.
            var inputs = Enumerable.Range(0, copies).SelectMany(c => files.Select(f => f with { Key = $"copy{c}/{f.Key}" })).ToList();
            var options = new DataPrepOptions { Mode = SelectionMode.PerSource, ContextLength = 81920, LengthMeasure = LengthMeasure.ExactTokens };
            var phases = new PhaseClock();
            var result = await DataPrepPipeline.RunAsync(options, inputs, Path.Combine(dir, "out"), 1, 0, tok, phases, ct);
            var elapsed = phases.Elapsed;
            var measured = result.Manifest?.Inputs.Sum(i => i.Tokens) ?? 0;
            var gc = GC.GetGCMemoryInfo();
            var heap = new Dictionary<string, double>
            {
                ["allocated_mib"] = GC.GetTotalAllocatedBytes() / 1048576.0,
                ["heap_mib_at_end"] = gc.HeapSizeBytes / 1048576.0,
                ["gen2_collections"] = GC.CollectionCount(2),
                ["live_mib_after_full_gc"] = GC.GetTotalMemory(forceFullCollection: true) / 1048576.0,
            };
            foreach (var (phase, rss) in phases.PeakRssAtStart)
            {
                heap[$"peak_rss_mib_when_{phase}_began"] = rss;
            }

            return new MemoryRun(measured, elapsed.TotalSeconds, PeakRssMiB(), phases.Seconds(), heap);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Seconds spent in each pipeline phase, from the first report of a phase to the first report of the next.</summary>
    private sealed class PhaseClock : IProgress<DataPrepProgress>
    {
        private readonly Stopwatch watch = Stopwatch.StartNew();
        private readonly List<(DataPrepPhase Phase, TimeSpan At)> starts = [];

        public TimeSpan Elapsed => watch.Elapsed;

        /// <summary>Peak RSS so far when each phase began: where in the run the peak happens.</summary>
        public Dictionary<string, double> PeakRssAtStart { get; } = [];

        public void Report(DataPrepProgress value)
        {
            lock (starts)
            {
                if (starts.Count == 0 || starts[^1].Phase != value.Phase)
                {
                    starts.Add((value.Phase, watch.Elapsed));
                    PeakRssAtStart[value.Phase.ToString().ToLowerInvariant()] = PeakRssMiB();
                }
            }
        }

        public Dictionary<string, double> Seconds()
        {
            var seconds = new Dictionary<string, double>();
            var at = TimeSpan.Zero;
            var phase = DataPrepPhase.Measure;
            foreach (var (next, start) in starts)
            {
                seconds[phase.ToString().ToLowerInvariant()] = seconds.GetValueOrDefault(phase.ToString().ToLowerInvariant()) + (start - at).TotalSeconds;
                (phase, at) = (next, start);
            }

            return seconds;
        }
    }

    private static double PeakRssMiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }

        return double.NaN;
    }

    private static async Task<MemoryRun> ChildMemoryRun(string input, string model, int copies, CancellationToken ct)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
        var self = Environment.GetCommandLineArgs()[0];

        // Under the dotnet host (dotnet wf.dll) the child needs the dll; the apphost (wf, as `dotnet run` starts it) does not.
        var underDotnetHost = Path.GetFileNameWithoutExtension(Environment.ProcessPath!).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        if (underDotnetHost && self.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            info.ArgumentList.Add(self);
        }

        foreach (var a in new[] { "bench", "prep", "--input", input, "--tokenizer", model, "--e2e-only", copies.ToString(CultureInfo.InvariantCulture) })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return process.ExitCode == 0
            ? JsonSerializer.Deserialize<MemoryRun>(output.Trim())!
            : throw new InvalidOperationException($"memory run x{copies} failed: {output}");
    }
}
