using SkiaSharp;
using Workflows.Evaluation.Heatmaps;
using Workflows.Evaluation.Needle;

namespace Workflows.Evaluation.Tests.Heatmaps;

public sealed class NeedleHeatmapTests : IDisposable
{
    private readonly string _dir = TestData.NewTempDirectory();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Linear interpolation through #F0496E (0) → #EBB839 (0.5) → #0CD79F (1), worked out independently of the code.
    private static (int R, int G, int B) Expected(double v, (int, int, int)[] stops)
    {
        var x = v * (stops.Length - 1);
        var i = Math.Min((int)x, stops.Length - 2);
        var t = x - i;
        var (r0, g0, b0) = stops[i];
        var (r1, g1, b1) = stops[i + 1];
        return ((int)Math.Round(r0 + ((r1 - r0) * t)), (int)Math.Round(g0 + ((g1 - g0) * t)), (int)Math.Round(b0 + ((b1 - b0) * t)));
    }

    private static readonly (int, int, int)[] Paper = [(0xF0, 0x49, 0x6E), (0xEB, 0xB8, 0x39), (0x0C, 0xD7, 0x9F)];
    private static readonly (int, int, int)[] Diverging = [(0xF0, 0x49, 0x6E), (0xFF, 0xFF, 0xFF), (0x0C, 0xD7, 0x9F)];

    [Fact]
    public void Cells_have_the_colours_of_their_scores_with_depth_zero_on_top()
    {
        long[] lengths = [1000, 4256, 7513, 10769];
        int[] depths = [0, 50, 100];
        var cells = new List<NeedleCellSummary>();
        var values = new Dictionary<(long, int), double>();
        for (var r = 0; r < depths.Length; r++)
        {
            for (var c = 0; c < lengths.Length; c++)
            {
                if (r == 2 && c == 3)
                {
                    continue; // a missing cell
                }

                var v = ((r * lengths.Length) + c) / 10.0; // 0.0 … 1.0
                values[(lengths[c], depths[r])] = v;
                cells.Add(new NeedleCellSummary(lengths[c], depths[r], v, 0, 1));
            }
        }

        var path = Path.Combine(_dir, "heatmap.png");
        var layout = NeedleHeatmap.Write(path, cells, new HeatmapOptions("Pressure Testing tiny", TrainingLength: 5000), "word-recall");

        using var bitmap = SKBitmap.Decode(path);
        bitmap.Width.Should().Be(1750);
        bitmap.Height.Should().Be(800);
        var cellWidth = layout.CellCenters[(4256, 0)].X - layout.CellCenters[(1000, 0)].X;
        var cellHeight = layout.CellCenters[(1000, 50)].Y - layout.CellCenters[(1000, 0)].Y;
        cellWidth.Should().BeGreaterThan(100);
        cellHeight.Should().BeGreaterThan(100);
        foreach (var ((length, depth), v) in values)
        {
            var (cx, cy) = layout.CellCenters[(length, depth)];
            var (er, eg, eb) = Expected(v, Paper);

            // The centre and points a third of a cell away in every direction: the whole cell has the colour.
            foreach (var (x, y) in new[] { (cx, cy), (cx - (cellWidth / 3), cy - (cellHeight / 3)), (cx + (cellWidth / 3), cy + (cellHeight / 3)), (cx - (cellWidth / 3), cy + (cellHeight / 3)) })
            {
                var pixel = bitmap.GetPixel(x, y);
                ((int)pixel.Red).Should().BeCloseTo(er, 3, $"cell L={length} depth={depth} v={v} at ({x}, {y})");
                ((int)pixel.Green).Should().BeCloseTo(eg, 3, $"cell L={length} depth={depth} v={v} at ({x}, {y})");
                ((int)pixel.Blue).Should().BeCloseTo(eb, 3, $"cell L={length} depth={depth} v={v} at ({x}, {y})");
            }
        }

        // Depth 0 is the top row, the first length the left column.
        layout.CellCenters[(1000, 0)].Y.Should().BeLessThan(layout.CellCenters[(1000, 100)].Y);
        layout.CellCenters[(1000, 0)].X.Should().BeLessThan(layout.CellCenters[(10769, 0)].X);

        var missing = bitmap.GetPixel(layout.CellCenters[(10769, 100)].X, layout.CellCenters[(10769, 100)].Y);
        missing.Should().Be(new SKColor(0xD9, 0xD9, 0xD9));

        // The dashed white training-length line lies between 4256 (≤ 5000) and 7513 (> 5000).
        var lineX = (layout.CellCenters[(4256, 50)].X + layout.CellCenters[(7513, 50)].X) / 2;
        var top = layout.CellCenters[(4256, 0)].Y;
        var bottom = layout.CellCenters[(4256, 100)].Y;
        var white = Enumerable.Range(top, bottom - top).Count(y => bitmap.GetPixel(lineX, y) is { Red: > 245, Green: > 245, Blue: > 245 });
        white.Should().BeGreaterThan((bottom - top) / 4, "a dashed white line runs down the column boundary");
    }

    [Fact]
    public void Difference_heatmap_is_green_where_better_red_where_worse_white_where_equal()
    {
        var baseline = new List<NeedleCellSummary>
        {
            new(1000, 0, 0.2, 0, 1), new(2000, 0, 1.0, 0, 1), new(1000, 100, 0.5, 0, 1), new(2000, 100, 0.4, 0, 1),
        };
        var experiment = new List<NeedleCellSummary>
        {
            new(1000, 0, 1.0, 0, 1), new(2000, 0, 0.0, 0, 1), new(1000, 100, 0.5, 0, 1), new(2000, 100, 0.9, 0, 1),
        };
        var path = Path.Combine(_dir, "diff.png");
        var layout = NeedleHeatmap.WriteDifference(path, experiment, baseline, new HeatmapOptions("per-source vs original"), "word-recall");
        using var bitmap = SKBitmap.Decode(path);
        foreach (var (length, depth, delta) in new[] { (1000L, 0, 0.8), (2000L, 0, -1.0), (1000L, 100, 0.0), (2000L, 100, 0.5) })
        {
            var (x, y) = layout.CellCenters[(length, depth)];
            var pixel = bitmap.GetPixel(x, y);
            var (er, eg, eb) = Expected((delta + 1) / 2, Diverging);
            ((int)pixel.Red).Should().BeCloseTo(er, 3, $"Δ={delta}");
            ((int)pixel.Green).Should().BeCloseTo(eg, 3, $"Δ={delta}");
            ((int)pixel.Blue).Should().BeCloseTo(eb, 3, $"Δ={delta}");
        }
    }

    [Fact]
    public void Colour_lookup_matches_the_paper_stops_at_the_ends_and_middle()
    {
        NeedleHeatmap.ColorOf(0, NeedleHeatmap.PaperStops).ToHex().Should().Be("#F0496E");
        NeedleHeatmap.ColorOf(1, NeedleHeatmap.PaperStops).ToHex().Should().Be("#0CD79F");
        // Entry 127 of 256 sits at 127/255 · 2 = 0.996 of the first segment: it rounds to the amber stop itself.
        NeedleHeatmap.ColorOf(0.499, NeedleHeatmap.PaperStops).ToHex().Should().Be("#EBB839");
        // Entry 64: t = 64/255 · 2 = 0.502 → (240 - 5t, 73 + 111t, 110 - 53t) = (237.5, 128.7, 83.4) → (237, 129, 83).
        NeedleHeatmap.ColorOf(0.25, NeedleHeatmap.PaperStops).ToHex().Should().Be("#ED8153");
    }
}
