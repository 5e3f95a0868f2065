using System.Collections.Concurrent;
using System.Security.Cryptography;
using Workflows.DataPrep.Tokenization;

namespace Workflows.DataPrep.Tests.Tokenization;

public sealed class LlamaSentencePieceTokenizerTests
{
    private static readonly Lazy<LlamaSentencePieceTokenizer> Shared = new(() => LlamaSentencePieceTokenizer.Load(TokenizerTestData.LlamaModelPath));
    private static readonly Lazy<List<string>> ValidationTexts = new(() => TokenizerTestData.ReadTexts(TokenizerTestData.ValidationFile));

    private static List<TokenizerTestData.ReferenceDocument> Golden()
    {
        var golden = Path.Combine(TokenizerTestData.Corpus, "golden");
        return TokenizerTestData.ReadReference(Path.Combine(golden, "validation.u16"), Path.Combine(golden, "validation.index.tsv"));
    }

    /// <summary>Compares every document; returns a description of each mismatch.</summary>
    private static List<string> Mismatches(IReadOnlyList<string> texts, IReadOnlyList<TokenizerTestData.ReferenceDocument> reference, Func<string, List<int>> encode)
    {
        var failures = new List<string>();
        foreach (var row in reference)
        {
            var text = texts[row.Doc];
            TokenizerTestData.Sha256Hex(text).Should().Be(row.TextSha256, "document {0} must be the text the reference ids were made from", row.Doc);
            var ids = encode(text);
            if (!ids.SequenceEqual(row.Ids))
            {
                failures.Add($"doc {row.Doc}: {TokenizerTestData.FirstDifference(row.Ids, ids)}");
            }
        }

        return failures;
    }

    [CorpusFact]
    public void Every_validation_document_gets_exactly_the_reference_SentencePiece_ids()
    {
        var golden = Golden();
        var texts = ValidationTexts.Value;
        golden.Should().HaveCount(298).And.HaveCount(texts.Count);
        golden.Sum(g => g.Ids.Length).Should().Be(609_932);

        var failures = Mismatches(texts, golden, Shared.Value.Encode);

        failures.Should().BeEmpty($"{golden.Count - failures.Count}/{golden.Count} documents match");
    }

    [CorpusFact]
    public void Tricky_strings_get_the_reference_ids_and_decode_like_the_reference()
    {
        var tokenizer = Shared.Value;
        var failures = new List<string>();
        foreach (var (text, expected, decoded) in SentencePieceReferenceCases.All)
        {
            var ids = tokenizer.Encode(text);
            if (!ids.SequenceEqual(expected))
            {
                failures.Add($"encode {Show(text)}: {TokenizerTestData.FirstDifference(expected, ids)}");
            }

            var ours = tokenizer.Decode(expected);
            if (ours != decoded)
            {
                failures.Add($"decode of {Show(text)}: expected {Show(decoded)}, got {Show(ours)}");
            }
        }

        foreach (var (ids, decoded) in SentencePieceReferenceCases.DecodeOnly)
        {
            var ours = tokenizer.Decode(ids);
            if (ours != decoded)
            {
                failures.Add($"decode [{string.Join(' ', ids)}]: expected {Show(decoded)}, got {Show(ours)}");
            }
        }

        SentencePieceReferenceCases.All.Length.Should().BeGreaterThan(550);
        failures.Should().BeEmpty();
    }

    [CorpusFact]
    public void Runs_of_spaces_are_merged_leftmost_first_as_SentencePiece_breaks_score_ties()
    {
        // All whitespace pieces score -1e9, so only the tie rule decides; Microsoft.ML.Tokenizers 2.0.1 gives 259 462 462 here.
        var ids = Shared.Value.Encode("x" + new string(' ', 35) + "y");

        ids.Should().Equal(921, 462, 462, 259, 343);
    }

    [CorpusFact]
    public void A_lone_surrogate_is_encoded_as_UTF_8_encoding_replaces_it_with_U_FFFD()
    {
        var tokenizer = Shared.Value;

        tokenizer.Encode("a\uD800b c\uDC00").Should().Equal(tokenizer.Encode("a\uFFFDb c\uFFFD"));
        tokenizer.Encode("\uD83D\uDE00").Should().Equal(new[] { 29871, 243, 162, 155, 131 }, "a valid pair is one code point, sent as 4 bytes");
    }

    [CorpusFact]
    public void Word_cache_scan_merge_and_heap_merge_give_identical_ids()
    {
        var tokenizer = Shared.Value;
        var texts = ValidationTexts.Value.Where(t => t.Length < 40_000).Take(120)
            .Concat(SentencePieceReferenceCases.All.Select(c => c.Text)).ToList();
        var uncachedScan = LlamaSentencePieceTokenizer.Load(TokenizerTestData.LlamaModelPath, segmentCacheCapacity: 0);
        var tinyCache = LlamaSentencePieceTokenizer.Load(TokenizerTestData.LlamaModelPath, segmentCacheCapacity: 3);

        foreach (var text in texts)
        {
            var expected = tokenizer.EncodeUncached(text, forceHeap: true);
            tokenizer.Encode(text).Should().Equal(expected, "cached encode of {0}", Show(text));
            uncachedScan.Encode(text).Should().Equal(expected, "uncached encode of {0}", Show(text));
            tinyCache.Encode(text).Should().Equal(expected, "encode with a cache that keeps clearing, of {0}", Show(text));
        }
    }

    [CorpusFact]
    public void Encode_from_several_threads_at_once_gives_the_reference_ids()
    {
        var tokenizer = LlamaSentencePieceTokenizer.Load(TokenizerTestData.LlamaModelPath); // cold caches on every thread
        var golden = Golden();
        var texts = ValidationTexts.Value;
        var failures = new ConcurrentBag<string>();

        Parallel.ForEach(
            golden.Concat(golden).Concat(golden),
            new ParallelOptions { MaxDegreeOfParallelism = 4 },
            () => new List<int>(),
            (row, _, ids) =>
            {
                ids.Clear();
                tokenizer.Encode(texts[row.Doc], ids);
                if (!ids.SequenceEqual(row.Ids))
                {
                    failures.Add($"doc {row.Doc}: {TokenizerTestData.FirstDifference(row.Ids, ids)}");
                }

                return ids;
            },
            _ => { });

        failures.Should().BeEmpty();
    }

    [CorpusFact]
    public void Decode_gives_back_the_validation_documents()
    {
        var tokenizer = Shared.Value;
        foreach (var text in ValidationTexts.Value.Concat([" leading space", "  two"]))
        {
            tokenizer.Decode(tokenizer.Encode(text)).Should().Be(text);
        }
    }

    [CorpusFact]
    public void Describes_the_LLaMA_2_vocabulary_and_names_the_model_file_by_its_hash()
    {
        var tokenizer = Shared.Value;
        var sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(TokenizerTestData.LlamaModelPath)));

        tokenizer.Id.Should().Be("llama2-sp:" + sha[..12]);
        tokenizer.VocabularySize.Should().Be(32000);
        tokenizer.BosId.Should().Be(1);
        tokenizer.EosId.Should().Be(2);
        tokenizer.SegmentsByWords.Should().BeTrue();
        tokenizer.Encode("").Should().BeEmpty();
        tokenizer.Decode([1, 15043, 3186, 2]).Should().Be("Hello world");
    }

    [Fact]
    public void Rejects_files_that_are_not_SentencePiece_models_naming_the_file_and_the_fault()
    {
        using var dir = new TempDirectory();
        var cases = new (string Name, byte[] Bytes, string Fault)[]
        {
            ("empty.model", [], "empty"),
            ("json.model", "{\"vocab\": {\"a\": 1}}"u8.ToArray(), "malformed protobuf"),
            ("random.model", RandomBytes(4096), "not a SentencePiece model"),
            ("no-pieces.model", Proto.Concat(BpeTrainer(), IdentityNormalizer()), "no vocabulary pieces"),
            ("truncated.model", Proto.Message(1, Proto.Message(1, Proto.Text("ab")))[..5], "runs past the end"),
        };

        foreach (var (name, bytes, fault) in cases)
        {
            var path = dir.Write(name, bytes);
            var act = () => LlamaSentencePieceTokenizer.Load(path);
            act.Should().Throw<InvalidDataException>()
                .Which.Message.Should().Contain(path).And.Contain(fault, "for {0}", name);
        }
    }

    [CorpusFact]
    public void Rejects_a_truncated_copy_of_the_real_model()
    {
        using var dir = new TempDirectory();
        var path = dir.Write("half.model", File.ReadAllBytes(TokenizerTestData.LlamaModelPath)[..250_000]);

        var act = () => LlamaSentencePieceTokenizer.Load(path);

        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain(path).And.Contain("not a SentencePiece model");
    }

    [Fact]
    public void Rejects_SentencePiece_models_it_does_not_implement()
    {
        using var dir = new TempDirectory();
        var unigram = Proto.Concat(SmallVocabulary(), Proto.Message(2, Proto.Varint(3, 1)), IdentityNormalizer());
        var nmt = Proto.Concat(SmallVocabulary(), BpeTrainer(), Proto.Message(3, Proto.Concat(Proto.Field(1, Proto.Text("nmt_nfkc")), Proto.Field(2, [1, 2, 3]), Proto.Varint(4, 0))));
        var extraSpaces = Proto.Concat(SmallVocabulary(), BpeTrainer(), Proto.Message(3, Proto.Field(1, Proto.Text("identity"))));
        var missingBytes = Proto.Concat(SmallVocabulary(), Proto.Message(2, Proto.Concat(Proto.Varint(3, 2), Proto.Varint(35, 1))), IdentityNormalizer());

        foreach (var (name, bytes, fault) in new[]
                 {
                     ("unigram.model", unigram, "model type is Unigram"),
                     ("nmt.model", nmt, "precompiled character map"),
                     ("extra-spaces.model", extraSpaces, "whitespace handling"),
                     ("missing-bytes.model", missingBytes, "0 byte pieces"),
                 })
        {
            var path = dir.Write(name, bytes);
            var act = () => LlamaSentencePieceTokenizer.Load(path);
            act.Should().Throw<NotSupportedException>().Which.Message.Should().Contain(path).And.Contain(fault);
        }
    }

    [Fact]
    public void A_small_hand_made_BPE_model_merges_by_score_and_falls_back_to_unk_without_byte_pieces()
    {
        using var dir = new TempDirectory();
        var path = dir.Write("tiny.model", Proto.Concat(SmallVocabulary(), BpeTrainer(), IdentityNormalizer()));
        var tokenizer = LlamaSentencePieceTokenizer.Load(path);

        // pieces: 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 a, 5 b, 6 ab (score -1), 7 ▁a (score -2), 8 ▁ab (-3)
        // "ab": ▁ a b -> "ab" (-1) beats "▁a" (-2) -> ▁ ab -> "▁ab" (-3)
        tokenizer.Encode("ab").Should().Equal(8);
        tokenizer.Encode("ba").Should().Equal(3, 5, 4);
        tokenizer.Encode("axb").Should().Equal(7, 0, 5);
        tokenizer.VocabularySize.Should().Be(9);
        tokenizer.Decode([8, 3, 4]).Should().Be("ab a");
    }

    private static byte[] SmallVocabulary() => Proto.Concat(
        Piece("<unk>", 0, 2), Piece("<s>", 0, 3), Piece("</s>", 0, 3), Piece("\u2581", -10, 1), Piece("a", -11, 1),
        Piece("b", -12, 1), Piece("ab", -1, 1), Piece("\u2581a", -2, 1), Piece("\u2581ab", -3, 1));

    private static byte[] Piece(string text, float score, int type) =>
        Proto.Message(1, Proto.Concat(Proto.Field(1, Proto.Text(text)), Proto.Float(2, score), Proto.Varint(3, (ulong)type)));

    private static byte[] BpeTrainer() => Proto.Message(2, Proto.Varint(3, 2));

    private static byte[] IdentityNormalizer() =>
        Proto.Message(3, Proto.Concat(Proto.Field(1, Proto.Text("identity")), Proto.Varint(3, 1), Proto.Varint(4, 0)));

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        new Random(7).NextBytes(bytes);
        return bytes;
    }

    private static string Show(string text) => text.Length > 60 ? $"\"{text[..60]}...\" ({text.Length} chars)" : $"\"{text}\"";

    /// <summary>Just enough protobuf writing to build SentencePiece models by hand.</summary>
    private static class Proto
    {
        public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

        public static byte[] Text(string s) => System.Text.Encoding.UTF8.GetBytes(s);

        public static byte[] Field(int field, byte[] payload) => Concat(VarintBytes((ulong)((field << 3) | 2)), VarintBytes((ulong)payload.Length), payload);

        public static byte[] Message(int field, byte[] payload) => Field(field, payload);

        public static byte[] Varint(int field, ulong value) => Concat(VarintBytes((ulong)(field << 3)), VarintBytes(value));

        public static byte[] Float(int field, float value) => Concat(VarintBytes((ulong)((field << 3) | 5)), BitConverter.GetBytes(value));

        private static byte[] VarintBytes(ulong value)
        {
            var bytes = new List<byte>();
            do
            {
                var b = (byte)(value & 0x7F);
                value >>= 7;
                bytes.Add(value == 0 ? b : (byte)(b | 0x80));
            }
            while (value != 0);

            return bytes.ToArray();
        }
    }
}

/// <summary>A scratch directory removed after the test.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("wf-tokenizer-tests-").FullName;

    public string Write(string name, byte[] bytes)
    {
        var file = System.IO.Path.Combine(Path, name);
        File.WriteAllBytes(file, bytes);
        return file;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
