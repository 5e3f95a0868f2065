using System.Text.RegularExpressions;
using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.Inference;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Scoring;

namespace Workflows.Evaluation.Tests.Needle;

/// <summary>
/// A real, deterministic generator: it decodes the prompt and answers with the rest of the sentence that begins
/// "The best thing to do in San Francisco is", but only when that sentence lies within its last
/// <c>attentionSpan</c> tokens (a crude "effective context"), otherwise "I do not know.". It also keeps a KV-cache
/// ledger (which tokens it holds) to check the prefix-reuse contract.
/// </summary>
internal sealed partial class LookupGenerator(ITokenizer tokenizer, int attentionSpan, int failAfterCalls = int.MaxValue) : IPrefixReuseGenerator
{
    private List<int> _cache = [];

    public string ModelName => "org/lookup-model.v1";

    public int Calls { get; private set; }

    public long PrefilledTokens { get; private set; }

    public string Generate(IReadOnlyList<int> promptIds, int maxNewTokens, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Calls >= failAfterCalls)
        {
            throw new OperationCanceledException("simulated interruption");
        }

        Calls++;
        var cached = 0;
        while (cached < _cache.Count && cached < promptIds.Count && _cache[cached] == promptIds[cached])
        {
            cached++;
        }

        cached.Should().Be(_cache.Count, "PrefillShared left exactly a prefix of this prompt in the cache");
        PrefilledTokens += promptIds.Count - cached;
        _cache = [.. promptIds];

        var visible = tokenizer.Decode(promptIds.Skip(Math.Max(0, promptIds.Count - attentionSpan)).ToList());
        var match = Answer().Match(visible);
        var answer = match.Success ? match.Groups[1].Value : "I do not know.";
        var words = answer.Split(' ');
        return string.Join(' ', words.Take(Math.Max(1, maxNewTokens / 2))).Trim();
    }

    public void PrefillShared(IReadOnlyList<int> prefix, CancellationToken cancellationToken)
    {
        var keep = 0;
        while (keep < _cache.Count && keep < prefix.Count && _cache[keep] == prefix[keep])
        {
            keep++;
        }

        PrefilledTokens += prefix.Count - keep;
        _cache = [.. prefix];
    }

    [GeneratedRegex(@"The best thing to do in San Francisco is ([^\n]*\.)")]
    private static partial Regex Answer();
}

public sealed class NeedleRunnerTests : IDisposable
{
    private readonly string _out = TestData.NewTempDirectory();

    public void Dispose() => Directory.Delete(_out, recursive: true);

    [Fact]
    public void Runs_the_grid_writes_one_paper_style_file_per_cell_and_reuses_the_prefix()
    {
        var (builder, runner, generator, grid) = Setup(failAfterCalls: int.MaxValue);
        var progress = new List<NeedleProgress>();
        var summary = runner.Run(grid, new SyncProgress<NeedleProgress>(progress.Add));

        summary.Ran.Should().Be(9);
        summary.Skipped.Should().Be(0);
        progress.Select(p => p.Done).Should().Equal(Enumerable.Range(1, 9));
        progress.Select(p => p.Cell).Should().Equal(grid.RunOrder());
        progress.Select(p => p.Cell.DepthPercent).Take(3).Should().Equal(100, 50, 0);

        var file = Path.Combine(_out, "lookup-model_v1_len_700_depth_5000_results.json");
        File.Exists(file).Should().BeTrue("the paper names files {model_version with '.'→'_'}_len_{L}_depth_{int(depth*100)}_results.json");
        var result = NeedleResultFiles.TryRead(file)!;
        result.Model.Should().Be("org/lookup-model.v1");
        result.ContextLength.Should().Be(700);
        result.DepthPercent.Should().Be(50);
        result.Needle.Should().Be(PaperNeedle.Needle);
        result.Scorer.Should().Be("word-recall");
        result.Scores.Keys.Should().BeEquivalentTo("rouge1", "word-recall", "word-recall-fixed");
        result.PromptTokens.Should().Be(builder.Build(700, 50).PromptIds.Count);
        result.NeedleSpans.Single().Should().Equal(builder.Build(700, 50).NeedleSpans[0].Start, builder.Build(700, 50).NeedleSpans[0].Length);

        // The generator sees the needle only in its last 400 tokens: at 400 tokens everything is found (11/12, the
        // quirk), at 1000 tokens the needle at depth 0 is out of reach.
        var byCell = summary.Results.ToDictionary(r => (r.ContextLength, (int)r.DepthPercent));
        byCell[(400, 0)].Score.Should().BeApproximately(11.0 / 12, 1e-12);
        byCell[(400, 0)].ModelResponse.Should().Be("eat a sandwich and sit in Dolores Park on a sunny day.");
        byCell[(1000, 0)].Score.Should().Be(0);
        byCell[(1000, 100)].Score.Should().BeApproximately(11.0 / 12, 1e-12);

        // Prefix reuse: the ledger of the generator equals the runner's count, and it is well below the plain total.
        generator.PrefilledTokens.Should().Be(summary.PrefillTokensWithReuse);
        summary.PromptTokens.Should().Be(summary.Results.Sum(r => (long)r.PromptTokens));
        // Within one length the deepest cell comes first and each shallower cell's pre-needle prefix is a prefix of
        // the prompt before it, so it prefills only what follows its needle's start; across lengths only the
        // template's header is shared.
        var expected = 0L;
        IReadOnlyList<int> previous = [];
        foreach (var length in grid.Lengths)
        {
            var prompts = grid.Depths.OrderDescending().Select(d => builder.Build(length, d)).ToList();
            for (var i = 1; i < prompts.Count; i++)
            {
                var prefix = prompts[i].PrefixBeforeNeedle;
                var shared = prompts[i - 1].PromptIds.Zip(prompts[i].PromptIds).TakeWhile(p => p.First == p.Second).Count();

                // At depth 0 the token before the needle is the template's trailing space, which GPT-2 merges with
                // the next word (" Legend") when the haystack follows instead: one token is re-prefilled there.
                shared.Should().BeGreaterThanOrEqualTo(prompts[i].DepthPercent == 0 ? prefix - 1 : prefix, $"L={length} depth={prompts[i].DepthPercent}");
                expected += prompts[i].PromptIds.Count - Math.Min(shared, prefix);
            }

            var header = previous.Zip(prompts[0].PromptIds).TakeWhile(p => p.First == p.Second).Count();
            header.Should().BeLessThan(25, "a new length shares the template header only");
            expected += prompts[0].PromptIds.Count - Math.Min(header, prompts[0].PrefixBeforeNeedle);
            previous = prompts[^1].PromptIds;
        }

        summary.PrefillTokensWithReuse.Should().Be(expected);
        summary.PrefillSaving.Should().BeGreaterThan(1.15);
    }

    [Fact]
    public void An_interrupted_run_resumes_and_skips_finished_cells()
    {
        var (_, runner, _, grid) = Setup(failAfterCalls: 4);
        var act = () => runner.Run(grid);
        act.Should().Throw<OperationCanceledException>();
        var written = Directory.GetFiles(_out, "*_results.json").ToDictionary(f => f, File.ReadAllText);
        written.Should().HaveCount(4);
        Directory.GetFiles(_out, "*.tmp").Should().BeEmpty();

        var (_, resumed, generator, _) = Setup(failAfterCalls: int.MaxValue);
        var summary = resumed.Run(grid);
        summary.Skipped.Should().Be(4);
        summary.Ran.Should().Be(5);
        generator.Calls.Should().Be(5);
        foreach (var (path, text) in written)
        {
            File.ReadAllText(path).Should().Be(text, "finished cells are not rewritten");
        }

        Directory.GetFiles(_out, "*_results.json").Should().HaveCount(9);
    }

    [Fact]
    public void A_changed_configuration_is_not_mistaken_for_a_finished_cell()
    {
        var (_, runner, _, grid) = Setup(failAfterCalls: int.MaxValue);
        runner.Run(grid);
        var (_, fixedRunner, generator, _) = Setup(failAfterCalls: int.MaxValue, fixBosLeak: true);
        fixedRunner.ConfigHash.Should().NotBe(runner.ConfigHash);
        fixedRunner.Run(grid).Ran.Should().Be(9);
        generator.Calls.Should().Be(9);
    }

    [Fact]
    public void Trials_get_their_own_files_and_aggregate_to_mean_and_spread()
    {
        var (_, runner, _, _) = Setup(failAfterCalls: int.MaxValue);
        var grid = new NeedleGrid([400, 1000], [0, 100], Trials: 3);
        var summary = runner.Run(grid);
        summary.Ran.Should().Be(12);
        File.Exists(Path.Combine(_out, "lookup-model_v1_len_400_depth_0_trial_2_results.json")).Should().BeTrue();
        var cells = NeedleAggregation.ByCell(summary.Results, NeedleScoreKind.WordRecall);
        cells.Should().HaveCount(4);
        cells.Should().OnlyContain(c => c.Trials == 3);
        var far = cells.Single(c => c.ContextLength == 1000 && c.DepthPercent == 0);
        far.Mean.Should().Be(0);
        far.StandardDeviation.Should().Be(0);
    }

    [Fact]
    public void Ordering_by_needle_position_gives_the_same_results_with_less_prefill()
    {
        var (_, runner, generator, grid) = Setup(failAfterCalls: int.MaxValue);
        var byLength = runner.Run(grid);
        var other = TestData.NewTempDirectory();
        try
        {
            var hf = HfTokenizerBehaviour.For(TestData.Gpt2);
            var haystack = Haystack.LoadDirectory(TestData.SampleHaystack);
            var builder = new NeedlePromptBuilder(hf, haystack, NeedleTask.Paper, 1000);
            var positional = new LookupGenerator(TestData.Gpt2, attentionSpan: 400);
            var summary = new NeedleRunner(builder, positional, new NeedleRunOptions(other, Order: NeedleRunOrder.ByNeedlePosition), TestData.Gpt2.Id, haystack.ContentHash).Run(grid);

            summary.Results.Select(r => (r.ContextLength, r.DepthPercent, r.ModelResponse, r.PromptTokens))
                .Should().BeEquivalentTo(byLength.Results.Select(r => (r.ContextLength, r.DepthPercent, r.ModelResponse, r.PromptTokens)));
            positional.PrefilledTokens.Should().Be(summary.PrefillTokensWithReuse);
            summary.PrefillTokensWithReuse.Should().BeLessThan(byLength.PrefillTokensWithReuse);
            generator.PrefilledTokens.Should().Be(byLength.PrefillTokensWithReuse);
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    private (NeedlePromptBuilder Builder, NeedleRunner Runner, LookupGenerator Generator, NeedleGrid Grid) Setup(int failAfterCalls, bool fixBosLeak = false)
    {
        var hf = HfTokenizerBehaviour.For(TestData.Gpt2);
        var haystack = Haystack.LoadDirectory(TestData.SampleHaystack);
        var grid = new NeedleGrid([400, 700, 1000], [0, 50, 100]);
        var builder = new NeedlePromptBuilder(hf, haystack, NeedleTask.Paper, grid.Lengths.Max(), new NeedleBuildOptions(FixBosLeak: fixBosLeak));
        var generator = new LookupGenerator(TestData.Gpt2, attentionSpan: 400, failAfterCalls);
        var runner = new NeedleRunner(builder, generator, new NeedleRunOptions(_out), TestData.Gpt2.Id, haystack.ContentHash);
        return (builder, runner, generator, grid);
    }
}

/// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
