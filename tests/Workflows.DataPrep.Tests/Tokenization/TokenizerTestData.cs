using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ZstdSharp;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Tests.Tokenization;

/// <summary>Finds the shared corpus (a folder with shared/corpus above the test assembly) and reads its files.</summary>
internal static class TokenizerTestData
{
    public static string Corpus => TestCorpus.SharedRoot ?? throw new InvalidOperationException(TestCorpus.MissingReason);

    public static string LlamaModelPath => Path.Combine(Corpus, "tokenizers", "llama2", "tokenizer.model");

    public static string ValidationFile => Path.Combine(Corpus, "slimpajama-mini", "validation", "example_validation_0.jsonl.zst");

    public static string[] TrainFiles =>
        Directory.GetFiles(Path.Combine(Corpus, "slimpajama-mini", "train"), "*.jsonl.zst").Order(StringComparer.Ordinal).ToArray();


    /// <summary>The "text" of every line of a SlimPajama .jsonl.zst file, in file order (a test-only reader).</summary>
    public static List<string> ReadTexts(string jsonlZstPath)
    {
        using var file = File.OpenRead(jsonlZstPath);
        using var zstd = new DecompressionStream(file);
        using var reader = new StreamReader(zstd, new UTF8Encoding(false, throwOnInvalidBytes: true));
        var texts = new List<string>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            using var json = JsonDocument.Parse(line);
            texts.Add(json.RootElement.GetProperty("text").GetString() ?? "");
        }

        return texts;
    }

    /// <summary>One row of a golden index: a document's reference ids and the SHA-256 of the text they belong to.</summary>
    public sealed record ReferenceDocument(int Doc, string TextSha256, int[] Ids);

    /// <summary>Reads ids in the golden format: <c>&lt;name&gt;.u16</c> (little-endian u16) + <c>&lt;name&gt;.index.tsv</c>.</summary>
    public static List<ReferenceDocument> ReadReference(string u16Path, string indexPath)
    {
        var bytes = File.ReadAllBytes(u16Path);
        var rows = new List<ReferenceDocument>();
        var lines = File.ReadAllLines(indexPath);
        var header = lines[0].Split('\t');
        int col(string name) => Array.IndexOf(header, name) is var i and >= 0 ? i : throw new InvalidDataException($"{indexPath} lacks column {name}");
        int docCol = col("doc"), shaCol = col("text_sha256"), offsetCol = col("offset"), countCol = col("count");
        foreach (var line in lines.Skip(1).Where(l => l.Length > 0))
        {
            var f = line.Split('\t');
            var offset = long.Parse(f[offsetCol], System.Globalization.CultureInfo.InvariantCulture);
            var count = int.Parse(f[countCol], System.Globalization.CultureInfo.InvariantCulture);
            var ids = new int[count];
            for (var i = 0; i < count; i++)
            {
                ids[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan((int)((offset + i) * 2), 2));
            }

            rows.Add(new ReferenceDocument(int.Parse(f[docCol], System.Globalization.CultureInfo.InvariantCulture), f[shaCol], ids));
        }

        return rows;
    }

    public static string Sha256Hex(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Describes where two id sequences first differ, with a little context, for failure messages.</summary>
    public static string FirstDifference(IReadOnlyList<int> expected, IReadOnlyList<int> actual)
    {
        var i = 0;
        while (i < expected.Count && i < actual.Count && expected[i] == actual[i])
        {
            i++;
        }

        string around(IReadOnlyList<int> ids) => string.Join(' ', ids.Skip(Math.Max(0, i - 3)).Take(8));
        return $"first difference at token {i} (lengths {expected.Count} vs {actual.Count}): reference [{around(expected)}] ours [{around(actual)}]";
    }
}
