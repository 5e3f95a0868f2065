using System.Globalization;
using ScottPlot;
using Workflows.Evaluation.Needle;

namespace Workflows.Evaluation.Heatmaps;

/// <summary>How a heatmap is drawn; the defaults give the paper's figure at 1750 × 800 px (17.5 × 8 in at 100 dpi).</summary>
/// <param name="Title">First title line (the paper: "Pressure Testing {model}").</param>
/// <param name="TrainingLength">Draws the dashed white line after the last length ≤ this (the paper: 81,920). Null: no line.</param>
public sealed record HeatmapOptions(string Title, long? TrainingLength = null, int Width = 1750, int Height = 800);

/// <summary>Where each cell landed in the image (pixel centre), for checks and for annotating.</summary>
public sealed record HeatmapLayout(IReadOnlyList<long> Lengths, IReadOnlyList<int> Depths, IReadOnlyDictionary<(long Length, int Depth), (int X, int Y)> CellCenters);

/// <summary>
/// The needle heatmap in the style of the paper's visualize.py: rows = depth percent (0 at the top), columns = context
/// length, colour = mean score over 0–1 on the colormap #F0496E → #EBB839 → #0CD79F, thin grey cell borders, axes
/// "Token Limit" / "Depth Percent", a colour bar "Score", the overall mean in the title, and a white dashed line
/// marking the training length. Missing cells are light grey.
/// </summary>
public static class NeedleHeatmap
{
    /// <summary>The paper's colour stops (visualize.py / gkamradt: red → amber → green).</summary>
    public static readonly IReadOnlyList<Color> PaperStops = [Color.FromHex("#F0496E"), Color.FromHex("#EBB839"), Color.FromHex("#0CD79F")];

    /// <summary>Diverging stops for experiment − baseline over −1…+1: red (worse) → white → green (better).</summary>
    public static readonly IReadOnlyList<Color> DifferenceStops = [Color.FromHex("#F0496E"), Color.FromHex("#FFFFFF"), Color.FromHex("#0CD79F")];

    public static readonly Color MissingCell = Color.FromHex("#D9D9D9");

    /// <summary>Draws the score heatmap; returns where each cell's centre is.</summary>
    public static HeatmapLayout Write(string pngPath, IReadOnlyList<NeedleCellSummary> cells, HeatmapOptions options, string scorerName)
    {
        ArgumentNullException.ThrowIfNull(cells);
        var mean = cells.Count == 0 ? double.NaN : cells.Average(c => c.Mean);
        var title = string.Create(CultureInfo.InvariantCulture,
            $"{options.Title}: mean {scorerName} {mean:0.000}\nFact Retrieval Across Context Lengths (\"Needle In A HayStack\")");
        return Draw(pngPath, cells.ToDictionary(c => (c.ContextLength, c.DepthPercent), c => c.Mean),
            new PiecewiseLinearColormap("needle", PaperStops), 0, 1, title, "Score", options);
    }

    /// <summary>
    /// Draws experiment − baseline per cell over −1…+1 (cells present in both only); the title gives both means and
    /// the difference of the means.
    /// </summary>
    public static HeatmapLayout WriteDifference(string pngPath, IReadOnlyList<NeedleCellSummary> experiment, IReadOnlyList<NeedleCellSummary> baseline, HeatmapOptions options, string scorerName)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(baseline);
        var b = baseline.ToDictionary(c => (c.ContextLength, c.DepthPercent), c => c.Mean);
        var diff = experiment.Where(c => b.ContainsKey((c.ContextLength, c.DepthPercent)))
            .ToDictionary(c => (c.ContextLength, c.DepthPercent), c => c.Mean - b[(c.ContextLength, c.DepthPercent)]);
        var e = experiment.Count == 0 ? double.NaN : experiment.Average(c => c.Mean);
        var m = baseline.Count == 0 ? double.NaN : baseline.Average(c => c.Mean);
        var title = string.Create(CultureInfo.InvariantCulture,
            $"{options.Title}: mean {scorerName} {e:0.000} vs baseline {m:0.000} (Δ {e - m:+0.000;-0.000;0.000})\nExperiment − baseline per cell");
        return Draw(pngPath, diff, new PiecewiseLinearColormap("difference", DifferenceStops), -1, 1, title, "Δ score", options);
    }

    /// <summary>
    /// The colour of a value on a 3-stop map, as matplotlib's <c>LinearSegmentedColormap.from_list(..., N=256)</c> picks
    /// it: lookup entry <c>min(int((v - lo) / (hi - lo) · 256), 255)</c>, entry i = linear interpolation at i / 255.
    /// </summary>
    public static Color ColorOf(double value, IReadOnlyList<Color> stops, double lo = 0, double hi = 1) =>
        new PiecewiseLinearColormap("x", stops).GetColor((value - lo) / (hi - lo));

    private static HeatmapLayout Draw(string pngPath, Dictionary<(long Length, int Depth), double> values, IColormap colormap, double lo, double hi, string title, string barLabel, HeatmapOptions options)
    {
        var lengths = values.Keys.Select(k => k.Length).Distinct().Order().ToList();
        var depths = values.Keys.Select(k => k.Depth).Distinct().Order().ToList();
        if (lengths.Count == 0)
        {
            throw new ArgumentException("no cells to draw", nameof(values));
        }

        // intensities[row, column]: row 0 is drawn at the top; it holds depth 0 as in the paper's figure.
        var data = new double[depths.Count, lengths.Count];
        for (var r = 0; r < depths.Count; r++)
        {
            for (var c = 0; c < lengths.Count; c++)
            {
                data[r, c] = values.TryGetValue((lengths[c], depths[r]), out var v) ? v : double.NaN;
            }
        }

        var plot = new Plot();
        var heatmap = plot.Add.Heatmap(data);
        heatmap.Colormap = colormap;
        heatmap.ManualRange = new ScottPlot.Range(lo, hi);
        heatmap.NaNCellColor = MissingCell;
        heatmap.Rectangle = new CoordinateRect(0, lengths.Count, 0, depths.Count); // cell (r, c) = [c, c+1] × rows from the top

        // Thin grey cell borders (seaborn linewidths=0.5, linecolor='grey').
        for (var c = 1; c < lengths.Count; c++)
        {
            var line = plot.Add.VerticalLine(c);
            line.LineColor = Colors.Grey;
            line.LineWidth = 1;
        }

        for (var r = 1; r < depths.Count; r++)
        {
            var line = plot.Add.HorizontalLine(r);
            line.LineColor = Colors.Grey;
            line.LineWidth = 1;
        }

        if (options.TrainingLength is { } trained)
        {
            // Between the last length ≤ the training length and the first one above it (the paper's code draws it
            // 0.8 of a column into the first longer column).
            var firstLonger = lengths.FindIndex(l => l > trained);
            if (firstLonger > 0)
            {
                var line = plot.Add.VerticalLine(firstLonger);
                line.LineColor = Colors.White;
                line.LineWidth = 4;
                line.LinePattern = LinePattern.Dashed;
            }
        }

        var bar = plot.Add.ColorBar(heatmap);
        bar.Label = barLabel;
        bar.LabelStyle.FontSize = 22;

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            lengths.Select((_, i) => i + 0.5).ToArray(), lengths.Select(l => l.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            depths.Select((_, i) => depths.Count - i - 0.5).ToArray(), depths.Select(d => d.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.TickLabelStyle.FontSize = 18;
        plot.Axes.Bottom.MinimumSize = 125; // room for the rotated length labels above the axis title
        plot.Axes.Left.TickLabelStyle.FontSize = 18;
        plot.XLabel("Token Limit", 24);
        plot.YLabel("Depth Percent", 24);
        plot.Title(title, 24);
        plot.Axes.SetLimits(0, lengths.Count, 0, depths.Count);
        plot.Axes.Margins(0, 0);

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(pngPath))!);
        plot.SavePng(pngPath, options.Width, options.Height);

        var centers = new Dictionary<(long, int), (int, int)>();
        for (var r = 0; r < depths.Count; r++)
        {
            for (var c = 0; c < lengths.Count; c++)
            {
                var pixel = plot.GetPixel(new Coordinates(c + 0.5, depths.Count - r - 0.5));
                centers[(lengths[c], depths[r])] = ((int)Math.Round(pixel.X), (int)Math.Round(pixel.Y));
            }
        }

        return new HeatmapLayout(lengths, depths, centers);
    }
}

/// <summary>A colormap through evenly spaced stops, sampled like matplotlib's 256-entry lookup table.</summary>
internal sealed class PiecewiseLinearColormap(string name, IReadOnlyList<Color> stops) : IColormap
{
    private const int Entries = 256;

    public string Name => name;

    public Color GetColor(double normalizedIntensity)
    {
        if (double.IsNaN(normalizedIntensity))
        {
            return NeedleHeatmap.MissingCell;
        }

        var index = (int)Math.Clamp(Math.Floor(normalizedIntensity * Entries), 0, Entries - 1);
        var x = (double)index / (Entries - 1) * (stops.Count - 1);
        var segment = Math.Min((int)x, stops.Count - 2);
        var t = x - segment;
        var a = stops[segment];
        var b = stops[segment + 1];
        return new Color(Lerp(a.R, b.R, t), Lerp(a.G, b.G, t), Lerp(a.B, b.B, t));
    }

    private static byte Lerp(byte a, byte b, double t) => (byte)Math.Round(a + ((b - a) * t), MidpointRounding.AwayFromZero);
}
