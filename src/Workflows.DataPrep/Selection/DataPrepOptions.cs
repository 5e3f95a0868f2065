using System.Text.Json.Serialization;
using Workflows.DataPrep.Corpus;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Selection;

/// <summary>The paper's data mixtures (Fu et al. 2024, §3 and Fig. 2) plus one of ours.</summary>
public enum SelectionMode
{
    /// <summary>"Original": every document once, packed as is (the released code's <c>none</c>).</summary>
    Original,

    /// <summary>"Cut at 4K": every document cut into pieces of <see cref="DataPrepOptions.CutLength"/> tokens, pieces shuffled apart.</summary>
    CutAt4K,

    /// <summary>"Global upsampling": short documents kept with probability keep ratio, whatever their source.</summary>
    Global,

    /// <summary>"Per-source upsampling": per-source budgets = budget × mix weight, short documents down-sampled within each source.</summary>
    PerSource,

    /// <summary>Per-source rule with named sources' weights raised (Book↑, ArXiv↑, Code↑, or the released combined variant).</summary>
    Upsample,
}

/// <summary>What a document's length is measured in when deciding "long" and counting budgets.</summary>
public enum LengthMeasure
{
    /// <summary>Code points / <see cref="DataPrepOptions.CharsPerToken"/> (3.68), as the released code does.</summary>
    EstimatedFromChars,

    /// <summary>The tokenizer's exact count.</summary>
    ExactTokens,
}

/// <summary>What happens to the document that crosses a budget.</summary>
public enum BudgetOverflow
{
    /// <summary>Ours (default): the crossing document is cut so the budget is met exactly (mix lands on the weights).</summary>
    Truncate,

    /// <summary>The released code: a source takes whole documents until its count passes its budget.</summary>
    Overshoot,
}

/// <summary>
/// Everything that decides the bytes of a data-prep run. Two runs with equal options, equal inputs and the same
/// tokenizer produce identical shards and manifest. <see cref="Threads"/> is the only field that does not count.
/// </summary>
public sealed record DataPrepOptions
{
    public SelectionMode Mode { get; init; } = SelectionMode.PerSource;

    /// <summary>Token budget in <see cref="LengthMeasure"/> units; null: the largest budget the rule can meet from the input.</summary>
    public long? TokenBudget { get; init; }

    /// <summary>Per-source weights for PerSource; null = the released code's natural SlimPajama mix.</summary>
    public IReadOnlyDictionary<SlimPajamaSource, double>? Mix { get; init; }

    /// <summary>
    /// Upsample mode: raw weights that replace the mix's weight of the named sources before renormalising (the
    /// released code's convention). Null = the released <c>UPSAMPLE_CODE_ARXIV_BOOK</c>: GitHub, ArXiv, Book at 0.60.
    /// </summary>
    public IReadOnlyDictionary<SlimPajamaSource, double>? UpsampleWeights { get; init; }

    public int LongThreshold { get; init; } = 4096;

    /// <summary>Probability of keeping a short document in Global/PerSource/Upsample (the released 0.1).</summary>
    public double ShortKeepRatio { get; init; } = 0.1;

    /// <summary>
    /// Ours: instead of a keep ratio, the share of each source's selected tokens that come from long documents
    /// (e.g. 0.7), met exactly by separate long and short quotas per source. A source already above it keeps its own.
    /// </summary>
    public double? TargetLongFraction { get; init; }

    public LengthMeasure LengthMeasure { get; init; } = LengthMeasure.EstimatedFromChars;

    public double CharsPerToken { get; init; } = 3.68;

    /// <summary>Piece length in tokens (BOS and separator included) for CutAt4K.</summary>
    public int CutLength { get; init; } = 4096;

    public BudgetOverflow Overflow { get; init; } = BudgetOverflow.Truncate;

    /// <summary>Passes over a source allowed when its budget exceeds what it holds (1 = never repeat a document).</summary>
    public int MaxEpochs { get; init; } = 1;

    public ulong Seed { get; init; } = 15213;

    /// <summary>Tokens per packed sequence (81,920 for 80K).</summary>
    public int ContextLength { get; init; } = 81920;

    /// <summary>Put the tokenizer's BOS before every document (the released code does, through HF defaults).</summary>
    public bool BosPerDocument { get; init; } = true;

    /// <summary>Put the tokenizer's EOS after every document (the released code does not).</summary>
    public bool EosPerDocument { get; init; }

    /// <summary>A separator id after every document instead of EOS; null = none (or EOS when <see cref="EosPerDocument"/>).</summary>
    public int? SeparatorId { get; init; }

    public int SequencesPerShard { get; init; } = 1024;

    /// <summary>Raw bytes per Parquet row group (rows = this / (4 × context), at least 1).</summary>
    public int RowGroupBytes { get; init; } = 32 << 20;

    public ShardCompression Compression { get; init; } = ShardCompression.Zstd;

    public CorpusReaderOptions Reader { get; init; } = new();

    /// <summary>Degree of parallelism; never changes a byte of output.</summary>
    [JsonIgnore]
    public int Threads { get; init; } = Environment.ProcessorCount;

    public bool IsLong(double length) => length >= LongThreshold;

    /// <summary>The weights the PerSource/Upsample budgets use, normalised to sum to 1.</summary>
    public IReadOnlyDictionary<SlimPajamaSource, double> EffectiveMix()
    {
        var raw = SlimPajama.Sources.ToDictionary(s => s, s => (Mix ?? SlimPajama.NaturalMix).GetValueOrDefault(s));
        if (Mode == SelectionMode.Upsample)
        {
            foreach (var (source, weight) in UpsampleWeights ?? UpsamplePresets.CodeArxivBook)
            {
                raw[source] = weight;
            }
        }

        var sum = raw.Values.Sum();
        if (sum <= 0 || raw.Values.Any(w => w < 0 || double.IsNaN(w)))
        {
            throw new ArgumentException("Mix weights must be non-negative and not all zero.");
        }

        return raw.ToDictionary(kv => kv.Key, kv => kv.Value / sum);
    }

    public void Validate()
    {
        if (ContextLength < 2)
        {
            throw new ArgumentException($"ContextLength must be at least 2, not {ContextLength}.");
        }

        if (ShortKeepRatio is < 0 or > 1)
        {
            throw new ArgumentException($"ShortKeepRatio must be in [0, 1], not {ShortKeepRatio}.");
        }

        if (TargetLongFraction is < 0 or > 1)
        {
            throw new ArgumentException($"TargetLongFraction must be in [0, 1], not {TargetLongFraction}.");
        }

        if (TargetLongFraction is not null && Mode is not (SelectionMode.PerSource or SelectionMode.Upsample))
        {
            throw new ArgumentException("TargetLongFraction applies to the PerSource and Upsample modes only.");
        }

        if (CutLength < 2 || SequencesPerShard < 1 || MaxEpochs < 1 || CharsPerToken <= 0 || LongThreshold < 1)
        {
            throw new ArgumentException("CutLength ≥ 2, SequencesPerShard ≥ 1, MaxEpochs ≥ 1, CharsPerToken > 0 and LongThreshold ≥ 1 are required.");
        }

        if (TokenBudget is <= 0)
        {
            throw new ArgumentException($"TokenBudget must be positive, not {TokenBudget}.");
        }
    }
}

public enum ShardCompression
{
    Zstd,
    Snappy,
}

/// <summary>Upsample weights for the paper's variants. The paper gives no factors; only the combined one is released.</summary>
public static class UpsamplePresets
{
    /// <summary>The released <c>UPSAMPLE_CODE_ARXIV_BOOK</c>: raw 0.60 each, i.e. 0.2251 each after renormalising.</summary>
    public static readonly IReadOnlyDictionary<SlimPajamaSource, double> CodeArxivBook = new Dictionary<SlimPajamaSource, double>
    {
        [SlimPajamaSource.Github] = 0.60,
        [SlimPajamaSource.ArXiv] = 0.60,
        [SlimPajamaSource.Book] = 0.60,
    };

    /// <summary>
    /// A single-source variant (Book↑, ArXiv↑, Code↑) whose source ends at <paramref name="share"/> of the mix after
    /// renormalising the natural mix; 0.55 sits in the 0.52–0.57 the paper's Fig. 2 shows for these variants.
    /// </summary>
    public static IReadOnlyDictionary<SlimPajamaSource, double> Single(SlimPajamaSource source, double share = 0.55)
    {
        var others = 1 - SlimPajama.NaturalMix[source];
        return new Dictionary<SlimPajamaSource, double> { [source] = share / (1 - share) * others };
    }
}
