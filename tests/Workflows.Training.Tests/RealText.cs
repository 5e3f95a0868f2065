using System.Text.Json;
using Microsoft.ML.Tokenizers;
using Workflows.Training.Data;
using ZstdSharp;

namespace Workflows.Training.Tests;

/// <summary>
/// Packed training sequences made from real text: the first documents of SlimPajama-mini's validation chunk,
/// tokenized with GPT-2's BPE, then renumbered densely in order of first appearance (a bijection on this sample)
/// so that a tiny model's embedding and output layers cover exactly the tokens that occur.
/// </summary>
public sealed class RealText
{
    static readonly Lazy<RealText?> shared = new(() => Load(maxTokens: 24_000));

    public static string? CorpusDirectory { get; } = FindCorpus();
    public static string SkipReason => "shared/corpus (SlimPajama-mini) not found beside the repository";
    public static RealText Shared => shared.Value ?? throw new InvalidOperationException(SkipReason);

    public required IReadOnlyList<int[]> Documents { get; init; }
    public required int VocabularySize { get; init; }

    public List<int[]> Pack(int context) => SequencePacking.Pack(Documents, context);

    static RealText? Load(int maxTokens)
    {
        if (CorpusDirectory is null) return null;
        string file = Path.Combine(CorpusDirectory, "slimpajama-mini", "validation", "example_validation_0.jsonl.zst");
        var gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
        var dense = new Dictionary<int, int>();
        var documents = new List<int[]>();
        int total = 0;

        using var decompressed = new DecompressionStream(File.OpenRead(file));
        using var reader = new StreamReader(decompressed);
        while (total < maxTokens && reader.ReadLine() is { } line)
        {
            string text = JsonDocument.Parse(line).RootElement.GetProperty("text").GetString() ?? "";
            var ids = gpt2.EncodeToIds(text);
            var doc = ids.Take(maxTokens - total).Select(id => dense.TryGetValue(id, out int d) ? d : dense[id] = dense.Count).ToArray();
            documents.Add(doc);
            total += doc.Length;
        }
        return new RealText { Documents = documents, VocabularySize = dense.Count };
    }

    static string? FindCorpus()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared", "corpus");
            if (Directory.Exists(Path.Combine(candidate, "slimpajama-mini"))) return candidate;
        }
        return null;
    }
}

/// <summary>A fact that needs the shared corpus; skipped with a reason when it is absent.</summary>
public sealed class CorpusFactAttribute : FactAttribute
{
    public CorpusFactAttribute()
    {
        if (RealText.CorpusDirectory is null) Skip = RealText.SkipReason;
    }
}
