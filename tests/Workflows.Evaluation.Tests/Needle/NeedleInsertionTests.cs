using Workflows.Evaluation.Needle;

namespace Workflows.Evaluation.Tests.Needle;

/// <summary>
/// Exact token positions of the paper's needle insertion, checked against positions derived by hand.
/// The haystack is four short sentences of four tokens each ("▁The ▁cat ▁sat ." in LLaMA-2; "The ▁cat ▁sat ." in
/// GPT-2), so every period sits at a position we can count, and the expected insertion point at depth d is
/// "the largest after-period position ≤ int(m · d / 100)", m being the trimmed context length.
/// </summary>
public sealed class NeedleInsertionTests : IDisposable
{
    private const int NeedleLlamaTokens = 28; // SentencePiece ids of the needle, checked in HfTokenizerBehaviourTests
    private readonly string _dir = TestData.NewTempDirectory();

    public NeedleInsertionTests()
    {
        // Written in reverse name order: the haystack must still read a.txt first.
        File.WriteAllText(Path.Combine(_dir, "b.txt"), "The sun set. The man won. ");
        File.WriteAllText(Path.Combine(_dir, "a.txt"), "The cat sat. The dog ran. ");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<long> Lengths => new() { 1000, 1337 };

    [CorpusFact]
    public void Llama_context_with_the_paper_defaults_starts_with_two_bos_and_a_space_then_four_token_sentences()
    {
        var builder = LlamaBuilder(fixBosLeak: false, maxLength: 1000);
        var ctx = builder.ContextIds(1000);

        // encode_and_trim decodes [1, ▁The, ...] to "<s> The cat ..."; encoding that again gives BOS, the "<s>" text
        // as id 1, and "▁" (29871) because the text after "<s>" is normalised on its own (" The" → "▁▁The").
        ctx.Take(3).Should().Equal(1, 1, 29871);
        ctx.Count.Should().Be(1002, "L - 1 haystack tokens + BOS + <s> + ▁");
        for (var k = 0; k < 240; k++)
        {
            ctx[3 + (4 * k) + 3].Should().Be(29889, $"sentence {k} ends with '.' at {3 + (4 * k) + 3}");
            ctx[3 + (4 * k)].Should().Be(450, "every sentence starts with ▁The");
        }
    }

    [CorpusFact]
    public void Llama_insertion_points_at_each_paper_depth_are_the_last_sentence_end_before_the_target()
    {
        foreach (var length in new long[] { 1000, 1337 })
        {
            var builder = LlamaBuilder(fixBosLeak: false, maxLength: 1337);
            foreach (var depth in NeedleGrid.Paper.Depths)
            {
                var prompt = builder.Build(length, depth);
                var m = (int)length - 200 - (NeedleLlamaTokens + 1); // the needle carries its own BOS
                prompt.ContextTokenCount.Should().Be(m);
                int expected;
                if (depth == 100)
                {
                    expected = m;
                }
                else
                {
                    // After-period positions: 3 leading tokens, then a period ends each 4-token sentence: 7, 11, 15, ...
                    var target = (int)(m * (depth / 100.0));
                    expected = target < 7 ? 0 : 7 + ((target - 7) / 4 * 4);
                }

                prompt.InsertionPoints.Should().Equal([expected], $"L={length}, depth={depth}");

                // In the prompt: BOS + 19 header ids, then the context with "<s>" texts turned back into ids; the
                // needle's own leaked BOS is the first id of its span, followed by "▁▁" (259) and "\n" (13).
                var span = prompt.NeedleSpans.Single();
                span.Start.Should().Be(20 + expected, $"L={length}, depth={depth}");
                span.Length.Should().Be(29);
                prompt.PromptIds.Skip(span.Start).Take(3).Should().Equal(1, 259, 13);
                prompt.PromptIds[span.End - 2].Should().Be(29889, "the needle ends with 'day.'");
                prompt.PromptIds[span.End - 1].Should().Be(13, "and its newline");
                prompt.Context.Should().Contain("<s> \nThe best thing to do in San Francisco", "the BOS leaks as text right before the needle");
            }
        }
    }

    [CorpusFact]
    public void Llama_with_fix_bos_leak_has_one_bos_and_sentence_ends_every_four_tokens_from_zero()
    {
        var builder = LlamaBuilder(fixBosLeak: true, maxLength: 1000);
        foreach (var depth in NeedleGrid.Paper.Depths)
        {
            var prompt = builder.Build(1000, depth);
            var m = 1000 - 200 - NeedleLlamaTokens;
            prompt.ContextTokenCount.Should().Be(m);
            var target = (int)(m * (depth / 100.0));
            var expected = depth == 100 ? m : target / 4 * 4;
            prompt.InsertionPoints.Should().Equal([expected], $"depth={depth}");

            // BOS + 18 header ids ("<book>" then "▁The" takes the header's trailing space), then the context. The
            // needle's own "▁" renders as a space before its "\n" ... except at depth 0, where the needle is the first
            // thing decoded, so the decoder strips that "▁"; the "▁" before "\n" in the prompt is then the
            // template's space, and the needle's characters begin one token later.
            var span = prompt.NeedleSpans.Single();
            span.Should().Be(depth == 0 ? new TokenSpan(20, NeedleLlamaTokens - 1) : new TokenSpan(19 + expected, NeedleLlamaTokens), $"depth={depth}");
            prompt.PromptIds.Skip(19 + expected).Take(2).Should().Equal(29871, 13);
            prompt.PromptIds.Count(id => id == 1).Should().Be(1);
            prompt.PromptIds[0].Should().Be(1);
            prompt.Context.Should().NotContain("<s>");
        }
    }

    [Fact]
    public void Gpt2_insertion_points_follow_the_period_token_and_the_span_decodes_to_the_needle()
    {
        var tokenizer = HfTokenizerBehaviour.For(TestData.Gpt2);
        tokenizer.PeriodIds.Should().Equal(13);
        var needleTokens = tokenizer.Encode(PaperNeedle.Needle, addSpecialTokens: true).Count;
        var builder = new NeedlePromptBuilder(tokenizer, Haystack.LoadDirectory(_dir), NeedleTask.Paper, 1000);

        var ctx = builder.ContextIds(1000);
        ctx.Count.Should().Be(1000, "GPT-2 adds no BOS, so the trimmed context re-encodes to L tokens");
        for (var k = 0; k < 240; k++)
        {
            ctx[(4 * k) + 3].Should().Be(13);
        }

        foreach (var depth in NeedleGrid.Paper.Depths)
        {
            var prompt = builder.Build(1000, depth);
            var m = 1000 - 200 - needleTokens;
            var target = (int)(m * (depth / 100.0));
            var expected = depth == 100 ? m : target / 4 * 4;
            prompt.InsertionPoints.Should().Equal([expected], $"depth={depth}");

            var span = prompt.NeedleSpans.Single();
            TestData.Gpt2.Decode(prompt.PromptIds.Skip(span.Start).Take(span.Length).ToList()).Should().Be(PaperNeedle.Needle);
            var before = TestData.Gpt2.Decode(prompt.PromptIds.Take(span.Start).ToList());
            if (depth < 100)
            {
                before.Should().EndWith(expected == 0 ? "<book> " : ".", $"depth={depth}");
            }

            before.Count(c => c == '.').Should().Be(expected / 4, "the header has no '.', so one per whole sentence before the needle");
        }
    }

    [Fact]
    public void Haystack_is_read_in_file_name_order()
    {
        var haystack = Haystack.LoadDirectory(_dir);
        haystack.Files.Select(f => f.Name).Should().Equal("a.txt", "b.txt");
        haystack.Cycle.Should().Be("The cat sat. The dog ran. The sun set. The man won. ");
    }

    private NeedlePromptBuilder LlamaBuilder(bool fixBosLeak, long maxLength) =>
        new(HfTokenizerBehaviour.For(TestData.LlamaTokenizer), Haystack.LoadDirectory(_dir), NeedleTask.Paper, maxLength,
            new NeedleBuildOptions(FixBosLeak: fixBosLeak));
}
