using Workflows.Experiments.Planning;
using Workflows.Experiments.Spec;

namespace Workflows.Evaluation.Needle;

/// <summary>The order in which cells are run; results do not depend on it, prefill work does.</summary>
public enum NeedleRunOrder
{
    /// <summary>Length ascending, depth descending within a length: the pre-needle prefix is reused within a length.</summary>
    ByLength,

    /// <summary>
    /// Needle position descending over all lengths (position ≈ depth × length): every context is a prefix of the same
    /// haystack, so a cell's pre-needle prefix is (almost always) a prefix of the previous prompt whatever its length.
    /// </summary>
    ByNeedlePosition,
}

/// <summary>One cell of the grid: a context length, a needle depth and a trial.</summary>
public readonly record struct NeedleCell(long ContextLength, int DepthPercent, int Trial);

/// <summary>
/// The grid of the paper: lengths <c>round(linspace(from, to, count))</c>, depths <c>round(linspace(0, 100, n))</c>
/// (numpy rounds half to even, as <see cref="Planner.Linspace"/>), times the number of trials.
/// </summary>
public sealed record NeedleGrid(IReadOnlyList<long> Lengths, IReadOnlyList<int> Depths, int Trials = 1)
{
    public static NeedleGrid FromSpec(NeedleSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new NeedleGrid(
            Planner.Linspace(spec.Lengths.From, spec.Lengths.To, spec.Lengths.Count),
            Planner.Linspace(0, 100, spec.Depths).Select(d => (int)d).ToList(),
            spec.Trials);
    }

    /// <summary>The paper's 40 × 10 grid (1,000 → 128,000 tokens; 0 → 100 %).</summary>
    public static NeedleGrid Paper { get; } = new(Planner.Linspace(1000, 128000, 40), Planner.Linspace(0, 100, 10).Select(d => (int)d).ToList());

    public int CellCount => Lengths.Count * Depths.Count * Trials;

    /// <summary>
    /// Cells in run order: by trial, then length ascending, then depth <b>descending</b>. All cells of one
    /// (trial, length) share the haystack; visiting deepest first makes every next prompt's pre-needle prefix a
    /// prefix of the prompt before it, so a KV cache is reused by truncation alone (see
    /// <see cref="Inference.IPrefixReuseGenerator"/>).
    /// </summary>
    public IEnumerable<NeedleCell> RunOrder(NeedleRunOrder order = NeedleRunOrder.ByLength)
    {
        if (order == NeedleRunOrder.ByNeedlePosition)
        {
            // Ties (e.g. every depth-0 cell) keep length order so the result is deterministic.
            return Enumerable.Range(0, Trials).SelectMany(t =>
                Lengths.Distinct().SelectMany(l => Depths.Distinct().Select(d => new NeedleCell(l, d, t)))
                    .OrderByDescending(c => (double)c.DepthPercent * c.ContextLength)
                    .ThenByDescending(c => c.ContextLength));
        }

        return ByLength();
    }

    private IEnumerable<NeedleCell> ByLength()
    {
        for (var t = 0; t < Trials; t++)
        {
            foreach (var length in Lengths.Distinct().Order())
            {
                foreach (var depth in Depths.Distinct().OrderDescending())
                {
                    yield return new NeedleCell(length, depth, t);
                }
            }
        }
    }
}
