using System.Text;
using Workflows.Evaluation.Needle;

namespace Workflows.Evaluation.Tests.Needle;

public sealed class HaystackTests : IDisposable
{
    private readonly string _dir = TestData.NewTempDirectory();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Files_are_read_like_python_text_mode()
    {
        File.WriteAllBytes(Path.Combine(_dir, "x.txt"), [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("One.\r\nTwo.\rThree.\n")]);
        File.WriteAllText(Path.Combine(_dir, "ignored.md"), "not a txt");
        var haystack = Haystack.LoadDirectory(_dir);
        haystack.Files.Should().ContainSingle();
        haystack.Cycle.Should().Be("\uFEFFOne.\nTwo.\nThree.\n", "utf-8 (not utf-8-sig) keeps the BOM; universal newlines translate \\r\\n and \\r");
    }

    [Fact]
    public void A_haystack_file_linked_out_of_the_scoped_roots_is_refused_and_a_fifo_always()
    {
        var outside = TestData.NewTempDirectory();
        try
        {
            File.WriteAllText(Path.Combine(outside, "secret.txt"), "TOKEN-xyz");
            File.WriteAllText(Path.Combine(_dir, "a.txt"), "The cat sat.");
            File.CreateSymbolicLink(Path.Combine(_dir, "b.txt"), Path.Combine(outside, "secret.txt"));

            using (Workflows.Experiments.Paths.PathPolicy.Use(new Workflows.Experiments.Paths.PathPolicy([_dir])))
            {
                var load = () => Haystack.LoadDirectory(_dir);
                load.Should().Throw<Workflows.Experiments.Paths.UnsafePathException>().Which.Message.Should().Contain("b.txt' resolves (through a symbolic link) to a place outside").And.NotContain("TOKEN");
            }

            File.Delete(Path.Combine(_dir, "b.txt"));
            using (var mkfifo = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("mkfifo", [Path.Combine(_dir, "c.txt")]) { UseShellExecute = false })!)
            {
                mkfifo.WaitForExit();
            }

            var withFifo = () => Haystack.LoadDirectory(_dir);
            withFifo.Should().Throw<Workflows.Experiments.Paths.UnsafePathException>().WithMessage("*c.txt' is a FIFO*");
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public void Text_repeats_whole_cycles_until_the_token_count_reaches_the_target_and_no_further()
    {
        File.WriteAllText(Path.Combine(_dir, "a.txt"), "The cat sat. The dog ran. ");
        var haystack = Haystack.LoadDirectory(_dir);
        var hf = HfTokenizerBehaviour.For(TestData.Gpt2);
        int Count(string t) => hf.Encode(t, true).Count;
        Count(haystack.Cycle).Should().Be(9, "two 4-token sentences and a trailing space");

        // Python: while tokens(context) < 100: context += cycle. Cycles joined re-tokenise " " + "The" as " The", so
        // r cycles have 8r + 1 tokens: the first r with 8r + 1 ≥ 100 is 13.
        var text = haystack.Text(0, 0, 100, Count);
        text.Length.Should().Be(13 * haystack.Cycle.Length);
        Count(text).Should().Be(105);
    }

    [Fact]
    public void The_shipped_sample_is_recognised_by_its_hash_and_is_not_the_papers()
    {
        var sample = Haystack.LoadDirectory(TestData.SampleHaystack);
        sample.ContentHash.Should().Be(KnownHaystacks.PublicDomainSampleSha256, "a change to samples/haystack must update KnownHaystacks");
        KnownHaystacks.Identify(sample.ContentHash).IsPaperHaystack.Should().BeFalse();
    }

    [CorpusFact]
    public void Paul_grahams_essays_are_recognised_as_the_papers_haystack_whatever_their_line_ends()
    {
        var essays = Haystack.LoadDirectory(TestData.PaulGrahamEssays);
        essays.ContentHash.Should().Be(KnownHaystacks.PaulGrahamEssaysSha256);
        KnownHaystacks.Identify(essays.ContentHash).IsPaperHaystack.Should().BeTrue();

        // The paper's repository has worked.txt with CRLF line ends (gkamradt's copy, the shared corpus's, has LF):
        // read like Python's text mode, both are the same haystack.
        foreach (var file in Directory.EnumerateFiles(TestData.PaulGrahamEssays, "*.txt"))
        {
            var text = File.ReadAllText(file);
            File.WriteAllText(Path.Combine(_dir, Path.GetFileName(file)),
                Path.GetFileName(file) == "worked.txt" ? text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal) : text);
        }

        File.ReadAllText(Path.Combine(_dir, "worked.txt")).Should().Contain("\r\n");
        Haystack.LoadDirectory(_dir).ContentHash.Should().Be(KnownHaystacks.PaulGrahamEssaysSha256);
    }

    [Fact]
    public void Trial_offsets_start_at_a_seeded_sentence_boundary()
    {
        var haystack = Haystack.LoadDirectory(TestData.SampleHaystack);
        haystack.TrialOffset(0, 15213).Should().Be(0);
        var offsets = Enumerable.Range(1, 8).Select(t => haystack.TrialOffset(t, 15213)).ToList();
        offsets.Should().Equal(Enumerable.Range(1, 8).Select(t => haystack.TrialOffset(t, 15213)), "the same seed gives the same offsets");
        offsets.Distinct().Should().HaveCountGreaterThan(6);
        Enumerable.Range(1, 8).Select(t => haystack.TrialOffset(t, 1)).Should().NotEqual(offsets);
        foreach (var o in offsets)
        {
            var before = haystack.Cycle[..o].TrimEnd();
            before.Should().MatchRegex(@"[.!?]$", "a trial starts right after a sentence end");
            char.IsWhiteSpace(haystack.Cycle[o]).Should().BeFalse();
        }

        var hf = HfTokenizerBehaviour.For(TestData.Gpt2);
        var trial = haystack.Text(3, 15213, 5000, t => hf.Encode(t, true).Count);
        trial.Should().StartWith(haystack.Cycle[haystack.TrialOffset(3, 15213)..][..200]);
    }

    [CorpusFact]
    public void Paul_graham_essays_with_llama_put_the_needle_after_a_period_and_leak_bos_before_it()
    {
        var hf = HfTokenizerBehaviour.For(TestData.LlamaTokenizer);
        var haystack = Haystack.LoadDirectory(TestData.PaulGrahamEssays);
        haystack.Files.Should().HaveCount(49);
        var builder = new NeedlePromptBuilder(hf, haystack, NeedleTask.Paper, 4256);
        foreach (var depth in new[] { 11, 56, 89 })
        {
            var prompt = builder.Build(4256, depth);
            var context = builder.ContextIds(4256);
            var p = prompt.InsertionPoints.Single();
            hf.PeriodIds.Should().Contain(context[p - 1]);
            for (var i = p; i < (int)((4256 - 200 - 29) * (depth / 100.0)); i++)
            {
                hf.PeriodIds.Should().NotContain(context[i], "no period lies between the insertion point and the target");
            }

            var span = prompt.NeedleSpans.Single();
            prompt.PromptIds[span.Start].Should().Be(1, "the leaked BOS opens the needle");
            // Re-encoding "<s> \nThe" gave the piece after "<s>" its own dummy "▁": "▁▁" (259) decodes to two spaces.
            hf.Decode(prompt.PromptIds.Skip(span.Start).Take(span.Length).ToList()).Should().Be("<s>  \nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n");
            prompt.PromptIds.Count.Should().BeInRange(4256 - 200 + 40, 4256 - 200 + 60, "context and needle trimmed to L - 200, plus the template (about 50 ids)");
            builder.Build(4256, depth).PromptIds.Should().Equal(prompt.PromptIds, "deterministic");
        }
    }
}
