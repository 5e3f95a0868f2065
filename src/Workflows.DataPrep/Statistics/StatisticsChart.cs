using ScottPlot;

namespace Workflows.DataPrep.Statistics;

/// <summary>PNG charts of <see cref="DataPrepStatistics"/>: the Fig. 2 panels (length histogram, source mix), before vs after.</summary>
public static class StatisticsChart
{
    private static readonly Color BeforeColor = Color.FromHex("#8C8C8C");
    private static readonly Color RequestedColor = Color.FromHex("#EBB839");
    private static readonly Color AfterColor = Color.FromHex("#1F77B4");

    /// <summary>Share of tokens per length bucket, before and after selection.</summary>
    public static void SaveLengthHistogram(DataPrepStatistics stats, string path)
    {
        var plot = new Plot();
        var before = stats.Before.Histogram.Select(b => b.TokenShare).ToArray();
        var after = stats.After.Histogram.Select(b => b.TokenShare).ToArray();
        AddGroupedBars(plot, DataPrepStatistics.BucketLabels, [("before selection", before, BeforeColor), ("after selection", after, AfterColor)]);
        plot.Title($"Token share by document length ({stats.Mode})");
        plot.YLabel("share of tokens");
        plot.XLabel("document length (tokens)");
        SaveAtomically(plot, path);
    }

    /// <summary>Share of tokens per source: before, requested (when the mode has a mix) and after.</summary>
    public static void SaveSourceMix(DataPrepStatistics stats, string path)
    {
        var plot = new Plot();
        var labels = stats.Before.Sources.Select(s => s.Source.Replace("RedPajama", string.Empty, StringComparison.Ordinal)).ToArray();
        var series = new List<(string, double[], Color)> { ("before selection", stats.Before.Sources.Select(s => s.TokenShare).ToArray(), BeforeColor) };
        if (stats.After.Sources.Any(s => s.RequestedShare is not null))
        {
            series.Add(("requested", stats.After.Sources.Select(s => s.RequestedShare ?? 0).ToArray(), RequestedColor));
        }

        series.Add(("after selection", stats.After.Sources.Select(s => s.TokenShare).ToArray(), AfterColor));
        AddGroupedBars(plot, labels, series);
        plot.Title($"Token share by source ({stats.Mode})");
        plot.YLabel("share of tokens");
        SaveAtomically(plot, path);
    }

    /// <summary>Shard tasks may publish at the same moment: render beside the target, then rename over it.</summary>
    private static void SaveAtomically(Plot plot, string path)
    {
        var temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8] + ".png";
        plot.SavePng(temp, 1000, 520);
        File.Move(temp, path, overwrite: true);
    }

    private static void AddGroupedBars(Plot plot, string[] labels, IReadOnlyList<(string Name, double[] Values, Color Color)> series)
    {
        var width = 0.8 / series.Count;
        for (var k = 0; k < series.Count; k++)
        {
            var bars = series[k].Values.Select((v, i) => new Bar
            {
                Position = i + ((k - ((series.Count - 1) / 2.0)) * width),
                Value = v,
                Size = width * 0.95,
                FillColor = series[k].Color,
                LineWidth = 0,
            }).ToList();
            var plottable = plot.Add.Bars(bars);
            plottable.LegendText = series[k].Name;
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, labels.Length).Select(i => (double)i).ToArray(), labels);
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Alignment.UpperRight);
    }
}
