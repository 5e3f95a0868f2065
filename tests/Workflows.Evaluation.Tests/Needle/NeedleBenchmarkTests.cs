using System.Diagnostics;
using Workflows.Evaluation.Needle;
using Xunit.Abstractions;

namespace Workflows.Evaluation.Tests.Needle;

/// <summary>
/// Builds every prompt of the paper's 400-cell grid (LLaMA-2 tokenizer, Paul Graham essays) and reports the time and
/// the prefill token counts with and without prefix reuse. Not a test: run with WF_EVAL_BENCH=1.
/// </summary>
public sealed class NeedleBenchmarkTests(ITestOutputHelper output)
{
    private const string Variable = "WF_EVAL_BENCH";

    [BenchFact]
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
        }
    }

    private sealed class BenchFactAttribute : FactAttribute
    {
        public BenchFactAttribute()
        {
            if (Environment.GetEnvironmentVariable(Variable) != "1")
            {
                Skip = $"a benchmark: set {Variable}=1 (needs shared/corpus)";
            }
            else if (TestData.CorpusRoot is null)
            {
                Skip = TestData.MissingCorpusReason;
            }
        }
    }
}
