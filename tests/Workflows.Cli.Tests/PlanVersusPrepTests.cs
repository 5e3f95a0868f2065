using System.Text.Json;
using Workflows.Cli.Commands;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Pipeline;
using Workflows.DataPrep.Selection;
using Workflows.DataPrep.Statistics;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Xunit.Abstractions;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// The planner against data prep on the shared corpus (LLaMA-2 tokenizer): the long-token share per source that
/// <c>wf plan</c> predicts after selection, against what <c>wf prep</c>'s selection produces. With <c>--input</c> the
/// plan runs data prep's selection and must agree within 1 pp (it agrees exactly); from measured statistics alone it
/// forecasts an expectation whose sampling spread it reports, and must land within 1 pp or 3 of its standard deviations.
/// </summary>
public sealed class PlanVersusPrepTests(ITestOutputHelper output) : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-plan-prep-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    private static string Train => Path.Combine(SharedCorpus.Root!, "slimpajama-mini", "train");

    private static string Tokenizer => Path.Combine(SharedCorpus.Root!, "tokenizers", "llama2", "tokenizer.model");

    /// <summary>The paper's per-source experiment with fields changed ("find => replace", separated by " | "): one rule each.</summary>
    public static TheoryData<string, string> Variants => new()
    {
        { "paper per-source (5B: every source exhausted)", "" },
        { "per-source, 3M tokens (budgets bind)", "token_budget: 5B => token_budget: 3M" },
        { "budget_rule paper, 3M tokens", "token_budget: 5B => token_budget: 3M\n  budget_rule: paper" },
        { "global", "mode: per-source => mode: global" },
        { "target long fraction 0.7, exact tokens, 3M tokens", "token_budget: 5B => token_budget: 3M | short_keep_ratio: 0.1 => target_long_fraction: 0.7\n    length_measure: tokens" },
        { "upsample Book to 0.55, 3M tokens", "token_budget: 5B => token_budget: 3M | mode: per-source => mode: upsample\n    sources: [Book]\n    target_share: 0.55" },
    };

    [CorpusTheory]
    [MemberData(nameof(Variants))]
    public void Plan_predicts_each_sources_long_share_after_selection_as_prep_selects(string name, string changes)
    {
        var experiment = Variant(changes);
        var prepStats = PrepSelection(experiment);

        var exact = PlanJson("--input", Train, "--tokenizer", Tokenizer, experiment);
        var forecast = PlanJson("--corpus-stats", Statistics(), experiment);
        output.WriteLine($"{name}: source, prep, plan --input, plan from statistics ± sd");
        var within1pp = 0;
        foreach (var source in SlimPajama.Sources)
        {
            var prep = prepStats.After.Sources.Single(s => s.Source == source.SetName());
            if (prep.Tokens == 0)
            {
                continue;
            }

            var e = Source(exact, source);
            var f = Source(forecast, source);
            var sd = f.GetProperty("long_share_sd").GetDouble();
            output.WriteLine($"  {source,-14} {prep.LongTokenShare:P2}  {e.GetProperty("expected_long_share").GetDouble():P2}  {f.GetProperty("expected_long_share").GetDouble():P2} ± {sd:P2}");
            e.GetProperty("expected_long_share").GetDouble().Should().BeApproximately(prep.LongTokenShare, 0.01, $"{name}: {source} (plan --input)");
            e.GetProperty("expected_tokens").GetInt64().Should().Be(prep.Tokens, $"{name}: {source} selected tokens (plan --input)");
            var error = Math.Abs(f.GetProperty("expected_long_share").GetDouble() - prep.LongTokenShare);
            error.Should().BeLessThanOrEqualTo(Math.Max(0.01, 3 * sd), $"{name}: {source} (forecast {f.GetProperty("expected_long_share").GetDouble():P2} ± {sd:P2})");
            within1pp += error <= 0.01 ? 1 : 0;
        }

        output.WriteLine($"  forecast within 1 pp for {within1pp} source(s)");
    }

    [CorpusFact]
    public void Wf_prep_writes_the_statistics_the_comparison_uses()
    {
        // The theory compares with data prep's selection statistics computed from the same length index; here the real
        // 'wf prep' run of the paper's experiment shows they are what it writes.
        var experiment = Variant("");
        var outDir = Path.Combine(temp, "prep");
        var prep = Wf("prep", experiment, "--input", Train, "--out", outDir, "--tokenizer", Tokenizer);
        prep.Exit.Should().Be(ExitCodes.Ok, prep.Err);
        var written = JsonSerializer.Deserialize<DataPrepStatistics>(File.ReadAllText(Path.Combine(outDir, "stats.json")), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        var computed = PrepSelection(experiment);
        written.After.Sources.Select(s => (s.Source, s.Tokens, s.LongTokenShare)).Should().Equal(computed.After.Sources.Select(s => (s.Source, s.Tokens, s.LongTokenShare)));
        written.PackedSequences.Should().Be(computed.PackedSequences);
    }

    private string Variant(string changes)
    {
        var text = File.ReadAllText(Path.Combine(Root, "experiments", "per-source-5b-80k.yaml"));
        foreach (var change in changes.Split(" | ", StringSplitOptions.RemoveEmptyEntries))
        {
            var (find, replace) = (change.Split(" => ")[0], change.Split(" => ")[1]);
            text.Should().Contain(find);
            text = text.Replace(find, replace, StringComparison.Ordinal);
        }

        var path = Path.Combine(temp, $"variant-{Guid.NewGuid():N}"[..16] + ".yaml");
        File.WriteAllText(path, text.Replace("name: per-source-5b-80k", "name: " + Path.GetFileNameWithoutExtension(path), StringComparison.Ordinal));
        return path;
    }

    private static readonly Lazy<IReadOnlyList<LengthIndex>> Indexes = new(() =>
    {
        var tok = TokenizerFactory.Create(Tokenizer);
        using var workers = new MeasureWorkers(Environment.ProcessorCount);
        return [.. InputFile.Discover([Train]).Select(f => CorpusMeasurer.MeasureLengths(f, new CorpusReaderOptions(), tok, workers, null, CancellationToken.None))];
    });

    /// <summary>Data prep's selection statistics (what 'wf prep' writes to stats.json) for an experiment on the shared train split.</summary>
    private static DataPrepStatistics PrepSelection(string experiment)
    {
        var spec = ExperimentLoader.LoadFile(experiment, new LoadOptions(PolicyMode.Off)).Require();
        var tok = TokenizerFactory.Create(Tokenizer);
        return DataPrepStatistics.From(SelectionPlanner.Plan(Indexes.Value, SpecMapping.ToDataPrepOptions(spec, tok), tok));
    }

    private string? statisticsPath;

    private string Statistics()
    {
        if (statisticsPath is null)
        {
            statisticsPath = Path.Combine(temp, "slimpajama-mini.stats.json");
            var stats = Wf("corpus", "stats", "--name", "slimpajama-mini", "--tokenizer", Tokenizer, "--out", statisticsPath, Train);
            stats.Exit.Should().Be(ExitCodes.Ok, stats.Err);
        }

        return statisticsPath;
    }

    private static JsonElement PlanJson(params string[] args)
    {
        var plan = Wf(["plan", "--json", .. args]);
        plan.Exit.Should().Be(ExitCodes.Ok, plan.Err + plan.Out);
        return JsonDocument.Parse(plan.Out).RootElement.Clone();
    }

    private static JsonElement Source(JsonElement plan, SlimPajamaSource source) =>
        plan.GetProperty("data").GetProperty("sources").EnumerateArray().Single(s => s.GetProperty("source").GetString() == source.ToString());
}

/// <summary>The shared research corpus beside the clone (../shared/corpus), with the LLaMA-2 tokenizer; null when absent.</summary>
internal static class SharedCorpus
{
    public static string? Root { get; } =
        TestCorpus.SharedRoot is { } root && File.Exists(Path.Combine(root, "tokenizers", "llama2", "tokenizer.model")) ? root : null;
}
