using System.Globalization;
using System.Text;
using Workflows.DataPrep.Tokenization;
using Xunit.Abstractions;

namespace Workflows.DataPrep.Tests.Tokenization;

/// <summary>
/// Runs only from compare-with-sentencepiece.sh, which first writes reference ids from the real SentencePiece
/// into $WF_SPM_REFERENCE_DIR (the train split is too big to keep golden ids in the repository).
/// </summary>
public sealed class SentencePieceReferenceTests(ITestOutputHelper output)
{
    [ReferenceDirectoryFact]
    [Trait("Category", "SentencePieceReference")]
    public void Every_document_of_every_file_matches_the_reference_SentencePiece()
    {
        var referenceDir = Environment.GetEnvironmentVariable(ReferenceDirectoryFactAttribute.Variable)!;
        var corpus = Environment.GetEnvironmentVariable("WF_SPM_CORPUS") is { Length: > 0 } c ? c : TokenizerTestData.Corpus;
        var tokenizer = LlamaSentencePieceTokenizer.Load(Path.Combine(corpus, "tokenizers", "llama2", "tokenizer.model"));
        var report = new StringBuilder();
        int totalDocs = 0, totalMatching = 0;
        long totalTokens = 0;
        var failures = new List<string>();
        var ids = new List<int>();
        foreach (var index in Directory.GetFiles(referenceDir, "*.index.tsv").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(index)[..^".index.tsv".Length];
            var source = Directory.GetFiles(Path.Combine(corpus, "slimpajama-mini"), name + ".jsonl.zst", SearchOption.AllDirectories).Single();
            var texts = TokenizerTestData.ReadTexts(source);
            var reference = TokenizerTestData.ReadReference(Path.Combine(referenceDir, name + ".u16"), index);
            reference.Should().HaveCount(texts.Count, "{0} has one reference row per document", name);
            var matching = 0;
            foreach (var row in reference)
            {
                TokenizerTestData.Sha256Hex(texts[row.Doc]).Should().Be(row.TextSha256);
                ids.Clear();
                tokenizer.Encode(texts[row.Doc], ids);
                if (ids.SequenceEqual(row.Ids))
                {
                    matching++;
                }
                else
                {
                    failures.Add($"{name} doc {row.Doc}: {TokenizerTestData.FirstDifference(row.Ids, ids)}");
                }

                totalTokens += row.Ids.Length;
            }

            report.AppendLine(CultureInfo.InvariantCulture, $"{name}: {matching}/{reference.Count} documents identical");
            totalDocs += reference.Count;
            totalMatching += matching;
        }

        report.AppendLine(CultureInfo.InvariantCulture,
            $"total: {totalMatching}/{totalDocs} documents identical ({100.0 * totalMatching / totalDocs:F2} %), {totalTokens:N0} reference tokens");
        File.WriteAllText(Path.Combine(referenceDir, "match-rate.txt"), report.ToString());
        output.WriteLine(report.ToString());
        totalDocs.Should().BePositive();
        failures.Should().BeEmpty();
    }
}

/// <summary>A fact that runs only when $WF_SPM_REFERENCE_DIR names a folder of reference ids.</summary>
public sealed class ReferenceDirectoryFactAttribute : FactAttribute
{
    public const string Variable = "WF_SPM_REFERENCE_DIR";

    public ReferenceDirectoryFactAttribute()
    {
        if (Environment.GetEnvironmentVariable(Variable) is not { Length: > 0 } dir || !Directory.Exists(dir))
        {
            Skip = $"needs reference ids from the real SentencePiece in ${Variable}; run compare-with-sentencepiece.sh";
        }
    }
}
