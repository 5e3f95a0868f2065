using System.Text.Json;
using System.Text.Json.Serialization;
using Workflows.DataPrep.Tokenization;

namespace Workflows.Evaluation.Needle;

/// <summary>One cell of a prompt sample: where the needle went and every prompt id.</summary>
public sealed record NeedlePromptSampleCell(
    bool FixBosLeak,
    long ContextLength,
    int DepthPercent,
    int InsertionPoint,
    int[] NeedleSpan,
    IReadOnlyList<int> PromptIds);

/// <summary>
/// Our needle prompts for a sample of cells, with everything needed to build the same prompts elsewhere (needle,
/// question, template, buffer, the longest context the haystack is repeated to). <c>bench/hf_needle_ids.py</c> builds
/// them again with HuggingFace's own LLaMA tokenizer and compares ids: the check of <see cref="HfTokenizerBehaviour"/>
/// against the real thing. The haystack itself is not in the file (the paper's is copyrighted): only its hash and
/// file names; the check reads the same folder.
/// </summary>
public sealed record NeedlePromptSample(
    string Format,
    string TokenizerId,
    string HaystackSha256,
    IReadOnlyList<string> HaystackFiles,
    string Needle,
    string Question,
    string PromptTemplate,
    int FinalContextLengthBuffer,
    long MaxContextLength,
    IReadOnlyList<int> PeriodIds,
    IReadOnlyList<NeedlePromptSampleCell> Cells)
{
    public const string FormatName = "wf-needle-prompts/1";

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>
    /// The default sample of a grid: its first, second, middle, 3/4 and last lengths × its first, second, middle and
    /// last depths (the paper's grid: 1,000 / 4,256 / 62,872 / 95,436 / 128,000 tokens × 0 / 11 / 44 / 100 %).
    /// </summary>
    public static IReadOnlyList<(long Length, int Depth)> DefaultCells(NeedleGrid grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        static IEnumerable<int> Pick(int count) =>
            new[] { 0, 1, (count - 1) / 2, 3 * (count - 1) / 4, count - 1 }.Where(i => i >= 0 && i < count).Distinct();
        var lengths = Pick(grid.Lengths.Count).Select(i => grid.Lengths[i]).Distinct().ToList();
        var depths = new[] { 0, 1, (grid.Depths.Count - 1) / 2, grid.Depths.Count - 1 }.Where(i => i < grid.Depths.Count).Distinct().Select(i => grid.Depths[i]).Distinct().ToList();
        return [.. lengths.SelectMany(l => depths.Select(d => (l, d)))];
    }

    /// <summary>Builds every cell twice: with the paper's BOS leak and with it fixed (both paths of the emulation).</summary>
    public static NeedlePromptSample Build(ITokenizer tokenizer, Haystack haystack, NeedleTask task, IReadOnlyList<(long Length, int Depth)> cells)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(haystack);
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(cells);
        if (task.Needles.Count != 1)
        {
            throw new ArgumentException("the prompt sample covers the paper's single-needle task", nameof(task));
        }

        var hf = HfTokenizerBehaviour.For(tokenizer);
        var max = cells.Max(c => c.Length);
        var result = new List<NeedlePromptSampleCell>();
        foreach (var fix in new[] { false, true })
        {
            var builder = new NeedlePromptBuilder(hf, haystack, task, max, new NeedleBuildOptions(FixBosLeak: fix));
            foreach (var (length, depth) in cells)
            {
                var p = builder.Build(length, depth);
                result.Add(new NeedlePromptSampleCell(fix, length, depth, p.InsertionPoints[0], [p.NeedleSpans[0].Start, p.NeedleSpans[0].Length], p.PromptIds));
            }
        }

        var options = new NeedleBuildOptions();
        return new NeedlePromptSample(FormatName, tokenizer.Id, haystack.ContentHash, [.. haystack.Files.Select(f => f.Name)],
            task.Needles[0], task.Question, options.PromptTemplate, options.FinalContextLengthBuffer, max, hf.PeriodIds, result);
    }

    public void Write(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        using var stream = File.Create(full);
        JsonSerializer.Serialize(stream, this, Json);
    }
}
