using System.Diagnostics;
using System.Globalization;
using System.Text;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;
using Workflows.DataPrep.Tokenization;
using Xunit.Abstractions;
using Workflows.Experiments.Spec;

using LengthMeasure = Workflows.DataPrep.Selection.LengthMeasure;

namespace Workflows.DataPrep.Tests;

/// <summary>
/// The numbers for docs/dataprep.md: every mixture on the full shared train split, plus end-to-end throughput and
/// peak memory. Not a test: run with WF_BENCH=1 (optionally WF_BENCH_TOKENIZER=gpt2, WF_BENCH_OUT=file.md).
/// </summary>
[Trait("Category", "Benchmark")]
public sealed class PrepBenchmark(ITestOutputHelper output)
{
    [BenchmarkFact(NeedsCorpus = true)]
    public async Task Every_mode_on_the_train_split()
    {
        using var temp = new TempFolder();
        ITokenizer tokenizer = Environment.GetEnvironmentVariable("WF_BENCH_TOKENIZER") == "gpt2"
            ? new Gpt2TestTokenizer()
            : LlamaSentencePieceTokenizer.Load(Path.Combine(SharedCorpus.Root!, "tokenizers", "llama2", "tokenizer.model"));
        var inputs = InputFile.FromPaths(SharedCorpus.TrainFiles);
        var report = new StringBuilder();
        var baseOptions = new DataPrepOptions { ContextLength = 81920, SequencesPerShard = 8 };

        // End to end, per-source (the paper's recommended mode): measure + plan + write + publish.
        var clock = Stopwatch.StartNew();
        var process = Process.GetCurrentProcess();
        var result = await DataPrepPipeline.RunAsync(baseOptions, inputs, temp.File("out"), 1, 0, tokenizer, null, CancellationToken.None);
        var endToEnd = clock.Elapsed.TotalSeconds;
        var indexes = result.Plan.Inputs;
        var corpusTokens = indexes.Sum(i => i.Header.Tokens);
        var corpusChars = indexes.Sum(i => i.Header.Chars);

        // Tokenization alone, same threads, same documents.
        clock.Restart();
        long tokensAlone = 0;
        foreach (var file in inputs)
        {
            var docs = CorpusReader.Read(file, new CorpusReaderOptions(), new BadRecordLog(false)).ToList();
            var counts = new long[docs.Count];
            Parallel.For(0, docs.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
            {
                var ids = new List<int>();
                tokenizer.Encode(docs[i].Text, ids);
                counts[i] = ids.Count;
            });
            tokensAlone += counts.Sum();
        }

        var tokenizeOnly = clock.Elapsed.TotalSeconds;
        process.Refresh();
        report.AppendLine(CultureInfo.InvariantCulture, $"Tokenizer {tokenizer.Id}; train split: {inputs.Count} files, {indexes.Sum(i => i.Header.Documents):N0} documents, {corpusChars:N0} code points, {corpusTokens:N0} tokens ({(double)corpusChars / corpusTokens:F2} chars/token).");
        report.AppendLine(CultureInfo.InvariantCulture, $"End to end (read + tokenize + plan + write {result.Plan.ShardCount} shards + stats/charts + manifest), {Environment.ProcessorCount} threads: {endToEnd:F1} s = {corpusTokens / endToEnd:N0} tokens/s ({corpusTokens / endToEnd / Environment.ProcessorCount:N0} per core).");
        report.AppendLine(CultureInfo.InvariantCulture, $"Read + tokenize alone: {tokenizeOnly:F1} s = {tokensAlone / tokenizeOnly:N0} tokens/s; end to end / tokenize alone = {endToEnd / tokenizeOnly:F2}x.");
        report.AppendLine(CultureInfo.InvariantCulture, $"Peak working set of the test process: {process.PeakWorkingSet64 / (1 << 20):N0} MiB.");
        report.AppendLine();

        var modes = new (string Name, DataPrepOptions Options)[]
        {
            ("original", baseOptions with { Mode = SelectionMode.Original }),
            ("cut at 4K", baseOptions with { Mode = SelectionMode.CutAt4K }),
            ("global (keep 0.1 of short)", baseOptions with { Mode = SelectionMode.Global }),
            ("per-source, released rule (chars/3.68, overshoot)", baseOptions with { Overflow = BudgetOverflow.Overshoot }),
            ("per-source, chars/3.68, truncate", baseOptions),
            ("per-source, exact tokens, truncate", baseOptions with { LengthMeasure = LengthMeasure.ExactTokens }),
            ("per-source, exact tokens, target long 0.7", baseOptions with { LengthMeasure = LengthMeasure.ExactTokens, TargetLongFraction = 0.7 }),
            ("upsample code+arxiv+book (released)", baseOptions with { Mode = SelectionMode.Upsample, LengthMeasure = LengthMeasure.ExactTokens }),
            ("upsample book (0.55)", baseOptions with { Mode = SelectionMode.Upsample, LengthMeasure = LengthMeasure.ExactTokens, UpsampleWeights = UpsamplePresets.Single(SlimPajamaSource.Book) }),
            ("upsample arxiv (0.55)", baseOptions with { Mode = SelectionMode.Upsample, LengthMeasure = LengthMeasure.ExactTokens, UpsampleWeights = UpsamplePresets.Single(SlimPajamaSource.ArXiv) }),
            ("upsample code (0.55)", baseOptions with { Mode = SelectionMode.Upsample, LengthMeasure = LengthMeasure.ExactTokens, UpsampleWeights = UpsamplePresets.Single(SlimPajamaSource.Github) }),
        };

        var before = DataPrepStatistics.From(SelectionPlanner.Plan(indexes, baseOptions with { Mode = SelectionMode.Original }, tokenizer)).Before;
        report.AppendLine("Before selection (train split): token share / share of documents ≥4K tokens / share of tokens in documents ≥4K:");
        report.AppendLine();
        report.AppendLine("| source | tokens | token share | docs ≥4K | tokens in docs ≥4K |");
        report.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var s in before.Sources)
        {
            report.AppendLine(CultureInfo.InvariantCulture, $"| {Short(s.Source)} | {s.Tokens:N0} | {s.TokenShare:P1} | {s.LongDocumentShare:P1} | {s.LongTokenShare:P1} |");
        }

        report.AppendLine(CultureInfo.InvariantCulture, $"| all | {before.Tokens:N0} | 100% | {before.LongDocumentShare:P1} | {before.LongTokenShare:P1} |");
        report.AppendLine();
        report.AppendLine("After selection, per mode, budget = the largest the rule can meet from this corpus. Each cell: token share (requested) · share of tokens in pieces ≥4K. Last column: largest |share − requested|.");
        report.AppendLine();
        report.AppendLine("| mode | selected tokens | " + string.Join(" | ", before.Sources.Select(s => Short(s.Source))) + " | max mix error |");
        report.AppendLine("|---|---:|" + string.Concat(Enumerable.Repeat("---:|", before.Sources.Count)) + "---:|");
        foreach (var (name, options) in modes)
        {
            var plan = SelectionPlanner.Plan(indexes, options, tokenizer);
            var after = DataPrepStatistics.From(plan);
            var cells = after.After.Sources.Select(s =>
                s.RequestedShare is { } r
                    ? string.Create(CultureInfo.InvariantCulture, $"{s.TokenShare:P1} ({r:P1}) · {s.LongTokenShare:P0}")
                    : string.Create(CultureInfo.InvariantCulture, $"{s.TokenShare:P1} · {s.LongTokenShare:P0}"));
            var error = plan.RequestedMix is null ? "–" : string.Create(CultureInfo.InvariantCulture, $"{after.MaxMixDeviation * 100:F2} pp");
            report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {after.After.Tokens:N0} | {string.Join(" | ", cells)} | {error} |");
        }

        output.WriteLine(report.ToString());
        var path = Environment.GetEnvironmentVariable("WF_BENCH_OUT");
        if (!string.IsNullOrEmpty(path))
        {
            await File.WriteAllTextAsync(path, report.ToString());
        }

        result.Manifest.Should().NotBeNull();
    }

    private static string Short(string source) => source.Replace("RedPajama", string.Empty, StringComparison.Ordinal);
}
