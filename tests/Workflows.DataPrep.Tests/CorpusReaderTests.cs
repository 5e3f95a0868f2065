using System.Text;
using Workflows.DataPrep.Corpus;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Tests;

/// <summary>Readers on real corpus lines, in every format, and every kind of bad input.</summary>
public sealed class CorpusReaderTests : IDisposable
{
    private readonly TempFolder temp = new();

    public void Dispose() => temp.Dispose();

    private static List<CorpusDocument> ReadAll(string path, CorpusReaderOptions? options = null, BadRecordLog? log = null)
    {
        options ??= new CorpusReaderOptions();
        var file = new InputFile(path, Path.GetFileName(path));
        return [.. CorpusReader.Read(file, options, log ?? new BadRecordLog(options.SkipBadRecords))];
    }

    private static List<byte[]> FirstLines(int count) => [.. SharedCorpus.ValidationLines.Take(count)];

    [Fact]
    public void Zstd_file_of_the_corpus_reads_every_document_with_its_source_line_and_offset()
    {
        var docs = ReadAll(SharedCorpus.Validation);
        var lines = SharedCorpus.ValidationLines;
        docs.Should().HaveCount(lines.Count);
        for (var i = 0; i < docs.Count; i++)
        {
            var (text, source) = CorpusFiles.Parse(lines[i]);
            docs[i].Text.Should().Be(text);
            docs[i].Source.SetName().Should().Be(source);
            docs[i].Line.Should().Be(i + 1);
        }

        docs[1].ByteOffset.Should().Be(lines[0].Length + 1);
    }

    [Fact]
    public async Task Jsonl_gzip_and_parquet_inputs_give_the_same_documents_as_zstd()
    {
        var lines = FirstLines(40);
        var expected = lines.Select(CorpusFiles.Parse).ToList();
        var paths = new[]
        {
            CorpusFiles.WriteJsonl(temp.File("a.jsonl"), lines),
            CorpusFiles.WriteGzip(temp.File("a.jsonl.gz"), lines),
            CorpusFiles.WriteZstd(temp.File("a.jsonl.zst"), lines),
            await CorpusFiles.WriteParquetAsync(temp.File("a.parquet"), expected),
        };
        foreach (var path in paths)
        {
            var docs = ReadAll(path);
            docs.Select(d => (d.Text, d.Source.SetName())).Should().Equal(expected, because: path);
        }
    }

    [Fact]
    public async Task Parquet_column_names_are_configurable()
    {
        var rows = FirstLines(5).Select(CorpusFiles.Parse).ToList();
        var path = await CorpusFiles.WriteParquetAsync(temp.File("named.parquet"), rows, "content", "domain");
        var docs = ReadAll(path, new CorpusReaderOptions { ParquetTextColumn = "content", ParquetSourceColumn = "domain" });
        docs.Select(d => d.Text).Should().Equal(rows.Select(r => r.Text));

        var act = () => ReadAll(path);
        act.Should().Throw<CorpusFormatException>().Which.Record.Reason.Should().Be(BadRecordReason.MissingText);
    }

    [Fact]
    public void Truncated_zstd_stops_with_the_file_and_reason()
    {
        var bytes = File.ReadAllBytes(CorpusFiles.WriteZstd(temp.File("full.jsonl.zst"), FirstLines(60)));
        var path = temp.File("cut.jsonl.zst");
        File.WriteAllBytes(path, bytes[..(bytes.Length * 2 / 3)]);

        var act = () => ReadAll(path);
        var error = act.Should().Throw<CorpusFormatException>().Which;
        error.Record.Reason.Should().Be(BadRecordReason.TruncatedCompression);
        error.Message.Should().Contain("cut.jsonl.zst").And.Contain("line");

        var log = new BadRecordLog(skip: true);
        var docs = ReadAll(path, new CorpusReaderOptions { SkipBadRecords = true }, log);
        docs.Should().NotBeEmpty().And.HaveCountLessThan(60);
        log.ToSummary().ByReason.Should().ContainKey(BadRecordReason.TruncatedCompression);
    }

    [Fact]
    public void Corrupt_zstd_is_reported_as_corrupt()
    {
        var bytes = File.ReadAllBytes(CorpusFiles.WriteZstd(temp.File("full.jsonl.zst"), FirstLines(60)));
        for (var i = bytes.Length / 2; i < (bytes.Length / 2) + 64; i++)
        {
            bytes[i] ^= 0xA5;
        }

        var path = temp.File("corrupt.jsonl.zst");
        File.WriteAllBytes(path, bytes);
        var act = () => ReadAll(path);
        act.Should().Throw<CorpusFormatException>().Which.Record.Reason
            .Should().BeOneOf(BadRecordReason.CorruptCompression, BadRecordReason.InvalidUtf8, BadRecordReason.NotJson);
        act.Should().Throw<CorpusFormatException>().Which.Message.Should().Contain("corrupt.jsonl.zst");
    }

    [Fact]
    public void Truncated_gzip_is_caught_by_its_trailer()
    {
        var bytes = File.ReadAllBytes(CorpusFiles.WriteGzip(temp.File("full.jsonl.gz"), FirstLines(60)));
        var path = temp.File("cut.jsonl.gz");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var act = () => ReadAll(path);
        act.Should().Throw<CorpusFormatException>().Which.Record.Reason
            .Should().BeOneOf(BadRecordReason.TruncatedCompression, BadRecordReason.CorruptCompression);
    }

    [Fact]
    public void Corrupt_gzip_is_reported()
    {
        var bytes = File.ReadAllBytes(CorpusFiles.WriteGzip(temp.File("full.jsonl.gz"), FirstLines(60)));
        for (var i = 100; i < 160; i++)
        {
            bytes[i] ^= 0x5A;
        }

        var path = temp.File("corrupt.jsonl.gz");
        File.WriteAllBytes(path, bytes);
        var act = () => ReadAll(path);
        act.Should().Throw<CorpusFormatException>().Which.Record.Reason
            .Should().BeOneOf(BadRecordReason.CorruptCompression, BadRecordReason.TruncatedCompression, BadRecordReason.InvalidUtf8, BadRecordReason.NotJson);
    }

    [Fact]
    public void Invalid_utf8_names_line_and_byte_offset()
    {
        var lines = FirstLines(6);
        var broken = lines[3].ToArray();
        var at = Array.IndexOf(broken, (byte)'"', 12) + 1; // inside the text value
        broken[at] = 0xFF;
        lines[3] = broken;
        var path = CorpusFiles.WriteJsonl(temp.File("utf8.jsonl"), lines);
        var lineStart = lines.Take(3).Sum(l => l.Length + 1);

        var act = () => ReadAll(path);
        var record = act.Should().Throw<CorpusFormatException>().Which.Record;
        record.Reason.Should().Be(BadRecordReason.InvalidUtf8);
        record.Line.Should().Be(4);
        record.ByteOffset.Should().Be(lineStart + at);
    }

    [Fact]
    public void Each_bad_line_kind_throws_by_default_and_is_counted_when_skipping()
    {
        var good = FirstLines(4);
        var (text, _) = CorpusFiles.Parse(good[0]);
        var escaped = System.Text.Json.JsonSerializer.Serialize(text);
        var cases = new (string Line, BadRecordReason Reason)[]
        {
            (Encoding.UTF8.GetString(good[1])[..50], BadRecordReason.NotJson),
            ("{\"meta\": {\"redpajama_set_name\": \"RedPajamaC4\"}}", BadRecordReason.MissingText),
            ($"{{\"text\": {escaped}, \"meta\": {{}}}}", BadRecordReason.MissingSource),
            ($"{{\"text\": {escaped}, \"meta\": {{\"redpajama_set_name\": \"RedPajamaFanFiction\"}}}}", BadRecordReason.UnknownSource),
        };

        foreach (var (line, reason) in cases)
        {
            var path = CorpusFiles.WriteJsonl(temp.File($"{reason}.jsonl"), [good[0], CorpusFiles.Utf8(line), good[2]]);
            var act = () => ReadAll(path);
            var record = act.Should().Throw<CorpusFormatException>().Which.Record;
            record.Reason.Should().Be(reason);
            record.Line.Should().Be(2);
            record.File.Should().Be($"{reason}.jsonl");

            var log = new BadRecordLog(skip: true);
            var docs = ReadAll(path, new CorpusReaderOptions { SkipBadRecords = true }, log);
            docs.Select(d => d.Line).Should().Equal(1, 3);
            log.ToSummary().Skipped.Should().Be(1);
            log.ToSummary().ByReason[reason].Should().Be(1);
        }
    }

    [Fact]
    public void Empty_input_is_an_error()
    {
        var path = temp.File("empty.jsonl.zst");
        CorpusFiles.WriteZstd(path, []);
        var act = () => ReadAll(path);
        act.Should().Throw<CorpusFormatException>().Which.Record.Reason.Should().Be(BadRecordReason.EmptyInput);
    }

    [Fact]
    public void Input_keys_are_relative_to_the_common_folder_so_repeated_names_stay_distinct()
    {
        var files = InputFile.FromPaths(["/data/sp/chunk2/example_train_0.jsonl.zst", "/data/sp/chunk1/example_train_0.jsonl.zst"]);
        files.Select(f => f.Key).Should().Equal("chunk1/example_train_0.jsonl.zst", "chunk2/example_train_0.jsonl.zst");
    }
}
