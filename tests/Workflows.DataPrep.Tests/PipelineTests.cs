using System.Security.Cryptography;
using System.Text.Json;
using Workflows.DataPrep.Corpus;
using Workflows.Experiments.Spec;
using Workflows.DataPrep.Packing;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;

namespace Workflows.DataPrep.Tests;

/// <summary>The whole pipeline on the test corpus (the shared validation split, or its shape cut from samples/), cut into four inputs of four formats.</summary>
public sealed class PipelineTests : IDisposable
{
    private readonly TempFolder temp = new();
    private readonly Gpt2TestTokenizer tokenizer = new();

    // Global mode (keeps every long document, 30% of short ones) into 2,048-token sequences, 16 per shard, 2 per row group.
    private static readonly DataPrepOptions Options = new()
    {
        Mode = SelectionMode.Global,
        ShortKeepRatio = 0.3,
        ContextLength = 2048,
        SequencesPerShard = 16,
        RowGroupBytes = 2 * 2048 * 4,
    };

    public void Dispose() => temp.Dispose();

    private async Task<IReadOnlyList<InputFile>> InputsAsync()
    {
        var lines = SharedCorpus.ValidationLines;
        var folder = Directory.CreateDirectory(temp.File("in")).FullName;
        var paths = new List<string>
        {
            CorpusFiles.WriteZstd(Path.Combine(folder, "a.jsonl.zst"), lines.Where((_, i) => i % 4 == 0)),
            CorpusFiles.WriteGzip(Path.Combine(folder, "b.jsonl.gz"), lines.Where((_, i) => i % 4 == 1)),
            CorpusFiles.WriteJsonl(Path.Combine(folder, "c.jsonl"), lines.Where((_, i) => i % 4 == 2)),
            await CorpusFiles.WriteParquetAsync(Path.Combine(folder, "d.parquet"), [.. lines.Where((_, i) => i % 4 == 3).Select(CorpusFiles.Parse)]),
        };
        return InputFile.FromPaths(paths);
    }

    /// <summary>Runs N shard tasks at once over one output folder, as N machines sharing a store would.</summary>
    private async Task<(string Folder, DataPrepResult[] Results)> RunAsync(IReadOnlyList<InputFile> inputs, int tasks, int threads, string name)
    {
        var outFolder = temp.File(name);
        var results = await Task.WhenAll(Enumerable.Range(0, tasks).Select(k => Task.Run(() =>
            DataPrepPipeline.RunAsync(Options with { Threads = threads }, inputs, outFolder, tasks, k, tokenizer, null, CancellationToken.None))));
        return (outFolder, results);
    }

    private static SortedDictionary<string, byte[]> Files(string folder) =>
        new(Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f), File.ReadAllBytes), StringComparer.Ordinal);

    [Fact]
    public async Task One_three_and_eight_shard_tasks_write_byte_identical_shards_and_manifest()
    {
        var inputs = await InputsAsync();
        var (one, oneResults) = await RunAsync(inputs, 1, threads: 2, "n1");
        var (three, threeResults) = await RunAsync(inputs, 3, threads: 1, "n3");
        var (eight, eightResults) = await RunAsync(inputs, 8, threads: 3, "n8");

        oneResults[0].Manifest.Should().NotBeNull();
        oneResults[0].Plan.ShardCount.Should().BeGreaterThanOrEqualTo(8, "every one of 8 tasks must have a shard to write");
        threeResults.Should().Contain(r => r.Manifest != null);
        eightResults.Should().Contain(r => r.Manifest != null);
        eightResults.Sum(r => r.WrittenShards.Count).Should().Be(oneResults[0].Plan.ShardCount);

        var expected = Files(one);
        expected.Keys.Should().Contain(["manifest.json", "stats.json", "shard-00000.parquet"]);
        foreach (var folder in new[] { three, eight })
        {
            var actual = Files(folder);
            actual.Keys.Should().Equal(expected.Keys);
            foreach (var (file, bytes) in expected)
            {
                actual[file].SequenceEqual(bytes).Should().BeTrue($"{file} must be identical in {folder}");
            }
        }
    }

    [Fact]
    public async Task Packed_sequences_are_the_planned_documents_with_BOS_running_across_sequence_boundaries()
    {
        var inputs = await InputsAsync();
        var (folder, results) = await RunAsync(inputs, 1, threads: 2, "pack");
        var plan = results[0].Plan;
        var manifest = results[0].Manifest!;

        // The expected stream: every planned piece as BOS + its tokens, in plan order.
        var texts = inputs.Select(f => CorpusReader.Read(f, new CorpusReaderOptions(), new BadRecordLog(false)).Select(d => d.Text).ToList()).ToList();
        var expected = new List<int>();
        var expectedSources = new List<string>();
        foreach (var piece in plan.Pieces)
        {
            var ids = new List<int>();
            tokenizer.Encode(texts[piece.File][piece.Document], ids);
            expected.Add(tokenizer.BosId!.Value);
            expected.AddRange(ids.Skip(piece.TokenStart).Take(piece.TokenCount));
            expectedSources.AddRange(Enumerable.Repeat(piece.Source.SetName(), piece.TokenCount + 1));
            if (expected.Count > plan.SequenceCount * 2048)
            {
                break;
            }
        }

        var actual = new List<int>();
        var crossing = 0;
        foreach (var shard in manifest.Shards)
        {
            await using var reader = await PackedShardReader.OpenAsync(Path.Combine(folder, shard.File));
            reader.Info.PlanId.Should().Be(plan.PlanId);
            reader.Info.ContextLength.Should().Be(2048);
            await foreach (var sequence in reader.ReadAsync())
            {
                sequence.Index.Should().Be(actual.Count / 2048);
                sequence.Tokens.Should().HaveCount(2048);
                sequence.Spans[0].Start.Should().Be(0);
                sequence.Spans[^1].End.Should().Be(2048);
                for (var i = 0; i < sequence.Spans.Count; i++)
                {
                    var span = sequence.Spans[i];
                    if (i > 0)
                    {
                        span.Start.Should().Be(sequence.Spans[i - 1].End);
                    }

                    expectedSources[actual.Count + span.Start].Should().Be(span.Source);
                    expectedSources[actual.Count + span.End - 1].Should().Be(span.Source);
                }

                if (sequence.Tokens[0] != tokenizer.BosId)
                {
                    crossing++; // this sequence begins inside a document that started in the previous one
                }

                actual.AddRange(sequence.Tokens);
            }
        }

        actual.Should().HaveCount((int)(plan.SequenceCount * 2048));
        actual.SequenceEqual(expected.Take(actual.Count)).Should().BeTrue("the shards hold the planned stream token for token");
        crossing.Should().BeGreaterThan(0);
    }

    [Fact]
    public async Task Manifest_names_every_shard_with_its_sha256_rows_and_tokens_and_statistics_add_up()
    {
        var inputs = await InputsAsync();
        var (folder, results) = await RunAsync(inputs, 1, threads: 2, "manifest");
        var manifest = DataPrepPipeline.ReadManifest(folder)!;
        var plan = results[0].Plan;

        manifest.PlanId.Should().Be(plan.PlanId);
        manifest.Shards.Should().HaveCount(plan.ShardCount);
        manifest.Shards.Sum(s => s.Rows).Should().Be(plan.SequenceCount);
        manifest.Tokens.Should().Be(plan.SequenceCount * 2048);
        foreach (var shard in manifest.Shards)
        {
            var bytes = File.ReadAllBytes(Path.Combine(folder, shard.File));
            Convert.ToHexStringLower(SHA256.HashData(bytes)).Should().Be(shard.Sha256);
            shard.Tokens.Should().Be(shard.Rows * 2048);
        }

        manifest.Inputs.Select(i => i.Key).Should().Equal("a.jsonl.zst", "b.jsonl.gz", "c.jsonl", "d.parquet");
        manifest.Inputs.Sum(i => i.Documents).Should().Be(SharedCorpus.ValidationLines.Count);

        var stats = JsonSerializer.Deserialize<DataPrepStatistics>(File.ReadAllBytes(Path.Combine(folder, "stats.json")), ReportJson.Options)!;
        Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, "stats.json")))).Should().Be(manifest.StatisticsSha256);
        stats.Before.Documents.Should().Be(SharedCorpus.ValidationLines.Count);
        stats.Before.Histogram.Sum(b => b.Documents).Should().Be(stats.Before.Documents);
        stats.Before.Histogram.Sum(b => b.Tokens).Should().Be(stats.Before.Tokens);
        stats.Before.Sources.Sum(s => s.Tokens).Should().Be(stats.Before.Tokens);
        stats.After.Tokens.Should().Be(plan.Pieces.Sum(p => (long)p.TokenCount));
        stats.After.LongDocumentShare.Should().BeGreaterThan(stats.Before.LongDocumentShare, "global mode drops 70% of short documents");
        stats.Before.Histogram.Select(b => b.Label).Should().Equal("0-1K", "1-2K", "2-4K", "4-8K", "8-16K", "16-32K", "32-64K", "64-128K", ">128K");

        foreach (var png in new[] { "length-histogram.png", "source-mix.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(folder, png));
            bytes.Length.Should().BeGreaterThan(5000);
            bytes.Take(8).Should().Equal(0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A);
        }
    }

    [Fact]
    public async Task A_run_cancelled_while_writing_leaves_no_manifest_and_replaces_none_of_another_plan()
    {
        var inputs = await InputsAsync();
        var folder = temp.File("fail");
        await DataPrepPipeline.RunAsync(Options with { Seed = 1 }, inputs, folder, 1, 0, tokenizer, null, CancellationToken.None);
        File.Exists(Path.Combine(folder, "manifest.json")).Should().BeTrue();

        using var cts = new CancellationTokenSource();
        var progress = new SynchronousProgress(p =>
        {
            if (p.Phase == DataPrepPhase.Write && p.ShardsDone >= 2)
            {
                cts.Cancel();
            }
        });
        var act = () => DataPrepPipeline.RunAsync(Options with { Seed = 2, Threads = 1 }, inputs, folder, 1, 0, tokenizer, progress, cts.Token);
        await act.Should().ThrowAsync<OperationCanceledException>();
        File.Exists(Path.Combine(folder, "manifest.json")).Should().BeFalse("the old manifest names shards this run overwrote");
        Directory.GetFiles(folder, "*.tmp-*", SearchOption.AllDirectories).Should().BeEmpty();
    }

    [Fact]
    public async Task A_bad_record_fails_the_run_before_anything_is_published_unless_skipping()
    {
        var lines = SharedCorpus.ValidationLines.Take(120).ToList();
        lines[50] = CorpusFiles.Utf8("{\"text\": \"no source here\"}");
        var path = CorpusFiles.WriteJsonl(temp.File("bad.jsonl"), lines);
        var inputs = InputFile.FromPaths([path]);
        var folder = temp.File("bad-out");

        var act = () => DataPrepPipeline.RunAsync(Options, inputs, folder, 1, 0, tokenizer, null, CancellationToken.None);
        (await act.Should().ThrowAsync<CorpusFormatException>()).Which.Record.Should().Match<BadRecord>(r => r.Line == 51 && r.Reason == BadRecordReason.MissingSource);
        File.Exists(Path.Combine(folder, "manifest.json")).Should().BeFalse();

        var skipping = Options with { Reader = new CorpusReaderOptions { SkipBadRecords = true } };
        var result = await DataPrepPipeline.RunAsync(skipping, inputs, folder, 1, 0, tokenizer, null, CancellationToken.None);
        result.Manifest!.Inputs.Single().SkippedRecords.Should().Be(1);
        result.Manifest.Inputs.Single().Documents.Should().Be(119);
    }

    private sealed class SynchronousProgress(Action<DataPrepProgress> report) : IProgress<DataPrepProgress>
    {
        public void Report(DataPrepProgress value) => report(value);
    }
}
