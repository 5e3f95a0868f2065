using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Workflows.Evaluation.Inference;
using Workflows.Evaluation.Scoring;

namespace Workflows.Evaluation.Needle;

/// <summary>Where results go and how they are scored.</summary>
/// <param name="OutputDirectory">Folder of the per-cell result files (the paper's <c>results/{model}/</c>).</param>
/// <param name="Scorer">Scorer whose value is the result's <c>score</c> (all scorers are stored in <c>scores</c>).</param>
/// <param name="MaxNewTokens">Greedy tokens per answer (paper: 50).</param>
/// <param name="SaveContexts">Also write each decoded context to <c>contexts/</c> beside the results, as the paper does (large).</param>
public sealed record NeedleRunOptions(
    string OutputDirectory,
    NeedleScoreKind Scorer = NeedleScoreKind.WordRecall,
    int MaxNewTokens = PaperNeedle.MaxNewTokens,
    int Version = 1,
    bool SaveContexts = false,
    NeedleRunOrder Order = NeedleRunOrder.ByLength);

/// <summary>Progress after each cell (run or skipped because its result already existed).</summary>
public sealed record NeedleProgress(int Done, int Total, int Skipped, NeedleCell Cell, NeedleResult Result, bool WasSkipped);

/// <summary>
/// What a run did. <see cref="PromptTokens"/> is what a model prefills without reuse; <see cref="PrefillTokensWithReuse"/>
/// what it prefills when it keeps the KV cache of the pre-needle prefix between cells (see
/// <see cref="IPrefixReuseGenerator"/>), for the cells that ran.
/// </summary>
public sealed record NeedleRunSummary(
    int Cells,
    int Ran,
    int Skipped,
    long PromptTokens,
    long PrefillTokensWithReuse,
    TimeSpan Elapsed,
    IReadOnlyList<NeedleResult> Results)
{
    public double PrefillSaving => PrefillTokensWithReuse == 0 ? 1 : (double)PromptTokens / PrefillTokensWithReuse;
}

/// <summary>
/// Walks a <see cref="NeedleGrid"/> in <see cref="NeedleGrid.RunOrder"/>, one cell at a time: build the prompt,
/// (optionally) hand the generator the shared prefix, generate, score, write the result file atomically. A cell
/// whose result file exists with the same <see cref="ConfigHash"/> is skipped, so an interrupted run resumes where
/// it stopped; cancellation stops between cells (or inside the generator) and loses at most the cell in flight.
/// </summary>
public sealed class NeedleRunner
{
    private readonly NeedlePromptBuilder _builder;
    private readonly IGreedyGenerator _generator;
    private readonly NeedleRunOptions _options;
    private readonly string _haystackHash;

    public NeedleRunner(NeedlePromptBuilder builder, IGreedyGenerator generator, NeedleRunOptions options, string tokenizerId, string haystackHash)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(options);
        _builder = builder;
        _generator = generator;
        _options = options;
        _haystackHash = haystackHash;
        ConfigHash = ComputeConfigHash(generator.ModelName, tokenizerId, haystackHash, builder.Task, builder.Options, options.MaxNewTokens);
    }

    /// <summary>SHA-256 (first 16 hex) of model, tokenizer, haystack, task, prompt options and max_new_tokens.</summary>
    public string ConfigHash { get; }

    public NeedleRunSummary Run(NeedleGrid grid, IProgress<NeedleProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(grid);
        var clock = Stopwatch.StartNew();
        var cells = grid.RunOrder(_options.Order).ToList();
        var results = new List<NeedleResult>(cells.Count);
        int ran = 0, skipped = 0;
        var ledger = new PrefixReuseLedger();
        var reuse = _generator as IPrefixReuseGenerator;

        foreach (var cell in cells)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var path = Path.Combine(_options.OutputDirectory, NeedleResultFiles.FileName(_generator.ModelName, cell));
            var existing = NeedleResultFiles.TryRead(path);
            if (existing is not null && existing.ConfigHash == ConfigHash)
            {
                skipped++;
                results.Add(existing);
                progress?.Report(new NeedleProgress(ran + skipped, cells.Count, skipped, cell, existing, true));
                continue;
            }

            var prompt = _builder.Build(cell.ContextLength, cell.DepthPercent, cell.Trial);
            var prefixLength = prompt.PrefixBeforeNeedle;
            var ids = prompt.PromptIds;
            ledger.Add(ids, prefixLength);

            var start = Stopwatch.GetTimestamp();
            if (reuse is not null)
            {
                reuse.PrefillShared(new ArraySegment<int>(ids.ToArray(), 0, prefixLength), cancellationToken);
            }

            var response = _generator.Generate(ids, _options.MaxNewTokens, cancellationToken);
            var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;

            var task = _builder.Task;
            var result = new NeedleResult
            {
                Model = _generator.ModelName,
                ContextLength = cell.ContextLength,
                DepthPercent = cell.DepthPercent,
                Version = _options.Version,
                Needle = string.Concat(task.Needles),
                ModelResponse = response,
                Score = NeedleScorers.Score(_options.Scorer, response, task),
                Scorer = NeedleScorers.Name(_options.Scorer),
                TestDurationSeconds = seconds,
                TestTimestampUtc = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "+0000",
                Trial = cell.Trial,
                Task = task.Name,
                Scores = NeedleScorers.All(response, task),
                PromptTokens = ids.Count,
                NeedleSpans = prompt.NeedleSpans.Select(s => new[] { s.Start, s.Length }).ToList(),
                InsertionPoints = prompt.InsertionPoints,
                FixBosLeak = _builder.Options.FixBosLeak,
                Haystack = _haystackHash,
                ConfigHash = ConfigHash,
            };

            if (_options.SaveContexts)
            {
                var contexts = Path.Combine(_options.OutputDirectory, "contexts");
                Directory.CreateDirectory(contexts);
                File.WriteAllText(Path.Combine(contexts, NeedleResultFiles.FileName(_generator.ModelName, cell).Replace("_results.json", "_context.txt", StringComparison.Ordinal)), prompt.Context);
            }

            NeedleResultFiles.WriteAtomically(path, result);
            ran++;
            results.Add(result);
            progress?.Report(new NeedleProgress(ran + skipped, cells.Count, skipped, cell, result, false));
        }

        return new NeedleRunSummary(cells.Count, ran, skipped, ledger.PromptTokens, ledger.PrefillTokensWithReuse, clock.Elapsed, results);
    }

    /// <summary>
    /// Builds every prompt of <paramref name="grid"/> in run order without a model: the prompt-building time and the
    /// prefill token counts with and without prefix reuse (for <c>wf eval needle --dry-run</c> and benchmarks).
    /// </summary>
    public static NeedleRunSummary DryRun(NeedlePromptBuilder builder, NeedleGrid grid, NeedleRunOrder order = NeedleRunOrder.ByLength, IProgress<NeedleCell>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(grid);
        var clock = Stopwatch.StartNew();
        var ledger = new PrefixReuseLedger();
        var cells = 0;
        foreach (var cell in grid.RunOrder(order))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var prompt = builder.Build(cell.ContextLength, cell.DepthPercent, cell.Trial);
            ledger.Add(prompt.PromptIds, prompt.PrefixBeforeNeedle);
            cells++;
            progress?.Report(cell);
        }

        return new NeedleRunSummary(cells, 0, 0, ledger.PromptTokens, ledger.PrefillTokensWithReuse, clock.Elapsed, []);
    }

    /// <summary>Counts what an ideal prefix-reusing generator prefills: each prompt minus what it shares with the cache.</summary>
    private sealed class PrefixReuseLedger
    {
        private IReadOnlyList<int> _cached = [];

        public long PromptTokens { get; private set; }

        public long PrefillTokensWithReuse { get; private set; }

        public void Add(IReadOnlyList<int> ids, int prefixLength)
        {
            var n = Math.Min(_cached.Count, ids.Count);
            var shared = 0;
            while (shared < n && _cached[shared] == ids[shared])
            {
                shared++;
            }

            PromptTokens += ids.Count;
            PrefillTokensWithReuse += ids.Count - Math.Min(shared, prefixLength);
            _cached = ids;
        }
    }

    private static string ComputeConfigHash(string model, string tokenizerId, string haystackHash, NeedleTask task, NeedleBuildOptions build, int maxNewTokens)
    {
        var canonical = JsonSerializer.Serialize(new
        {
            model,
            tokenizer = tokenizerId,
            haystack = haystackHash,
            task = new { task.Name, task.Needles, task.Question },
            build.FixBosLeak,
            build.FinalContextLengthBuffer,
            build.PromptTemplate,
            build.TrialSeed,
            maxNewTokens,
        });
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)))[..16];
    }
}
