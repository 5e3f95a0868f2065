using System.Diagnostics;
using Workflows.Evaluation.Needle;
using Xunit.Abstractions;

namespace Workflows.Evaluation.Tests.Needle;

/// <summary>
/// Builds every prompt of the paper's 400-cell grid (LLaMA-2 tokenizer, Paul Graham essays), reports the time and the
/// prefill token counts with and without prefix reuse, and checks what they must satisfy. Run with WF_BENCH=1.
/// </summary>
public sealed class NeedleBenchmarkTests(ITestOutputHelper output)
{
    [BenchmarkFact(NeedsCorpus = true)]
    [Trait("Category", "Benchmark")]
    public void Paper_grid_prompt_building_and_prefix_reuse()
    {
        var hf = HfTokenizerBehaviour.For(TestData.LlamaTokenizer);
        var haystack = Haystack.LoadDirectory(TestData.PaulGrahamEssays);
        foreach (var fix in new[] { false, true })
        {
            var clock = Stopwatch.StartNew();
            var builder = new NeedlePromptBuilder(hf, haystack, NeedleTask.Paper, 128000, new NeedleBuildOptions(FixBosLeak: fix));
            var byLength = NeedleRunner.DryRun(builder, NeedleGrid.Paper);
            var byPosition = NeedleRunner.DryRun(builder, NeedleGrid.Paper, NeedleRunOrder.ByNeedlePosition);
            output.WriteLine(
                $"fix_bos_leak={fix}: 400 prompts built in {byLength.Elapsed.TotalSeconds:0.0} s (second pass, cached contexts: {byPosition.Elapsed.TotalSeconds:0.0} s); " +
                $"prompt tokens {byLength.PromptTokens:N0}; prefill with reuse by length {byLength.PrefillTokensWithReuse:N0} ({byLength.PrefillSaving:0.00}x), " +
                $"by needle position {byPosition.PrefillTokensWithReuse:N0} ({byPosition.PrefillSaving:0.00}x); total {clock.Elapsed.TotalSeconds:0.0} s");
            Console.WriteLine($"BENCH fix={fix} build={byLength.Elapsed.TotalSeconds:0.0}s tokens={byLength.PromptTokens} reuseByLength={byLength.PrefillTokensWithReuse} ({byLength.PrefillSaving:0.000}x) reuseByPosition={byPosition.PrefillTokensWithReuse} ({byPosition.PrefillSaving:0.000}x)");

            // Both orders build the same 400 prompts; reuse can only save tokens, and within a length the shared
            // haystack prefix makes the by-length order save at least as much as the by-position one.
            byLength.Cells.Should().Be(400);
            byPosition.Cells.Should().Be(400);
            byPosition.PromptTokens.Should().Be(byLength.PromptTokens);
            byLength.PrefillTokensWithReuse.Should().BeLessThan(byLength.PromptTokens);
            byPosition.PrefillTokensWithReuse.Should().BeLessThanOrEqualTo(byPosition.PromptTokens);
            byLength.PrefillTokensWithReuse.Should().BeLessThanOrEqualTo(byPosition.PrefillTokensWithReuse);
        }
    }
}
