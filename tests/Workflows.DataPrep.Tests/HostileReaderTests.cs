using System.Diagnostics;
using System.Text;
using Workflows.DataPrep.Corpus;
using Workflows.Experiments.Paths;
using ZstdSharp;

namespace Workflows.DataPrep.Tests;

/// <summary>
/// The corpus readers as an engine step calls them, with the path policy of a worker in scope: the readers refuse what
/// the policy refuses before they open it, and stop a hostile file at its limits with a located message.
/// </summary>
public sealed class HostileReaderTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("wf-reader-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static CorpusReaderOptions Options(ReadLimits limits) => new() { Limits = limits };

    private static List<CorpusDocument> ReadAll(string path, CorpusReaderOptions? options = null) =>
        [.. CorpusReader.Read(new InputFile(path, Path.GetFileName(path)), options ?? new CorpusReaderOptions(), new BadRecordLog(skip: false))];

    private string Write(string name, string text)
    {
        var path = Path.Combine(root, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void A_fifo_is_refused_before_the_open_that_would_block()
    {
        var fifo = Path.Combine(root, "pipe.jsonl");
        using (var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [fifo]) { UseShellExecute = false })!)
        {
            mkfifo.WaitForExit();
        }

        var watch = Stopwatch.StartNew();
        var read = () => ReadAll(fifo);
        var discover = () => InputFile.Discover([root]);

        read.Should().Throw<UnsafePathException>().WithMessage("*pipe.jsonl' is a FIFO*");
        discover.Should().Throw<UnsafePathException>().WithMessage("*pipe.jsonl' is a FIFO*");
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void A_worker_scope_refuses_a_link_out_of_its_roots_and_says_nothing_of_the_target()
    {
        var secret = Write("outside/secret.jsonl", "{\"text\":\"TOKEN-abc\",\"meta\":{\"redpajama_set_name\":\"RedPajamaBook\"}}\n");
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        File.CreateSymbolicLink(Path.Combine(data, "link.jsonl"), secret);

        using (PathPolicy.Use(new PathPolicy([data])))
        {
            var read = () => ReadAll(Path.Combine(data, "link.jsonl"));
            var hash = () => CorpusMeasurer.Sha256Of(Path.Combine(data, "link.jsonl"));

            read.Should().Throw<UnsafePathException>().Which.Message.Should().Contain("outside").And.NotContain("TOKEN");
            hash.Should().Throw<UnsafePathException>();
        }

        ReadAll(Path.Combine(data, "link.jsonl")).Should().ContainSingle("outside a scope only the kind rules apply (validation checked the roots)");
    }

    [Fact]
    public void An_empty_folder_says_so_instead_of_no_input_files_were_given()
    {
        Directory.CreateDirectory(Path.Combine(root, "empty"));
        Write("empty/readme.txt", "not a corpus file");

        var discover = () => InputFile.Discover([Path.Combine(root, "empty")]);

        discover.Should().Throw<ArgumentException>().WithMessage("*empty' holds no corpus files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)*");
    }

    [Fact]
    public void A_line_over_the_document_limit_is_refused_at_its_line_whatever_skip_bad_records_says()
    {
        var line = "{\"text\":\"" + new string('a', 3000) + "\",\"meta\":{\"redpajama_set_name\":\"RedPajamaBook\"}}";
        var path = Write("long.jsonl", "{\"text\":\"short\",\"meta\":{\"redpajama_set_name\":\"RedPajamaBook\"}}\n" + line + "\n");
        var limits = new ReadLimits(MaxDocumentBytes: 1024, MaxDecompressedBytes: 1 << 20, MaxCompressionRatio: 1000);

        var strict = () => ReadAll(path, Options(limits));
        var skipping = () => CorpusReader.Read(new InputFile(path, "long.jsonl"), Options(limits) with { SkipBadRecords = true }, new BadRecordLog(skip: true)).ToList();

        strict.Should().Throw<CorpusFormatException>().WithMessage("document at long.jsonl:2 exceeds 1,024 bytes (the limit per document; WF_MAX_DOCUMENT_MIB raises it)")
            .Which.Record.Reason.Should().Be(BadRecordReason.TooLarge);
        skipping.Should().Throw<CorpusFormatException>("a reader cannot skip past a line it cannot hold");
    }

    [Fact]
    public void Decompressed_size_and_compression_ratio_are_bounded_per_input()
    {
        var lines = string.Concat(Enumerable.Repeat("{\"text\":\"x\",\"meta\":{\"redpajama_set_name\":\"RedPajamaBook\"}}\n", 40_000));
        var path = Path.Combine(root, "many.jsonl.zst");
        using (var compressor = new Compressor(3))
        {
            File.WriteAllBytes(path, compressor.Wrap(Encoding.UTF8.GetBytes(lines)).ToArray());
        }

        var small = () => ReadAll(path, Options(new ReadLimits(1 << 20, MaxDecompressedBytes: 64 * 1024, MaxCompressionRatio: 1e9)));
        ReadAll(path).Should().HaveCount(40_000, "the default limits let an ordinary file through");
        small.Should().Throw<CorpusFormatException>().WithMessage("input decompresses past the limit at many.jsonl.zst:*(more than 65,536 bytes; the limit per input; WF_MAX_INPUT_GIB raises it)");
    }

    [Fact]
    public void Limits_come_from_the_environment_when_set()
    {
        var limits = ReadLimits.FromEnvironment(v => v switch
        {
            ReadLimits.DocumentVariable => "256",
            ReadLimits.InputVariable => "0.5",
            ReadLimits.RatioVariable => "not a number",
            _ => null,
        });

        limits.Should().Be(new ReadLimits(256L << 20, 512L << 20, ReadLimits.Builtin.MaxCompressionRatio));
    }
}
