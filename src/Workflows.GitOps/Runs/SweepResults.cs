using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Evaluation.Comparison;
using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Publishing;

namespace Workflows.GitOps.Runs;

/// <summary>
/// A sweep on its pull request: every variant's state and, once variants have succeeded, their comparison (the
/// parameters that differ, needle means per length and effective length, heatmaps side by side and against the
/// baseline, the Table 5 loss layout), all in the run section of the sweep file's one sticky comment. Heatmaps are
/// published to the reports container under content-hashed names and linked by URL.
/// </summary>
public sealed class SweepResults(IArtifactStore store, ReportPublisher? publisher)
{
    /// <summary>How many times a report is rebuilt when variants finish while it is being written.</summary>
    public const int MaxRounds = 5;

    public RunComparisonLoader Loader { get; } = new(store);

    public async Task<SweepReport> BuildAsync(SweepRecord sweep, CancellationToken cancellationToken = default)
    {
        var runs = await Loader.LoadSweepAsync(sweep, cancellationToken).ConfigureAwait(false);
        string? markdown = null;
        RunComparison? comparison = null;
        if (runs.Any(r => r.Succeeded))
        {
            var baseline = sweep.Baseline is { } b && runs.FirstOrDefault(r => r.Experiment == b) is { } named ? named.RunId : null;
            var input = new ComparisonInput($"sweep {sweep.Name}", runs, baseline);
            comparison = Comparison.Build(input);
            var urls = await PublishImagesAsync(comparison, input, cancellationToken).ConfigureAwait(false);
            markdown = ComparisonMarkdown.Render(comparison, name => urls.GetValueOrDefault(name), "#####");
        }

        var variants = new List<SweepVariantState>();
        foreach (var (variant, run) in sweep.Variants.Zip(runs))
        {
            var record = (await Loader.Runs.GetAsync(variant.RunId, cancellationToken).ConfigureAwait(false))?.Record;
            var row = comparison?.Runs.FirstOrDefault(r => r.RunId == variant.RunId);
            var numbers = row?.Needle;
            variants.Add(new SweepVariantState(
                variant.Index,
                variant.Name,
                variant.RunId,
                record is null ? null : RunResults.StateOf(record.Status),
                variant.DescribeValues(),
                numbers?.Mean,
                numbers?.EffectiveLengthText,
                record?.Duration,
                record is null ? variant.SubmitError ?? "not submitted" : record.Error ?? run.Error,
                NeedleDisabled: row?.NeedleDisabled ?? run.NeedleDisabled));
        }

        return new SweepReport(sweep.Name, sweep.SweepId, variants, sweep.Origin?.HeadSha, sweep.Origin?.RequestedBy, markdown);
    }

    /// <summary>
    /// Builds the report and writes it to the sweep's comment and commit status. Variants finish concurrently and each
    /// one's hook reports the whole sweep; a report whose variants changed state while it was built and written is
    /// rebuilt, so the last write always shows the latest states (the run record is final before its hook runs).
    /// </summary>
    public async Task<(SweepReport Report, StickyCommentResult Comment)> ReportAsync(PullRequestBot bot, SweepRecord sweep, int pullRequest, CancellationToken cancellationToken = default)
    {
        for (var round = 1; ; round++)
        {
            var before = await StatesAsync(sweep, cancellationToken).ConfigureAwait(false);
            var report = await BuildAsync(sweep, cancellationToken).ConfigureAwait(false);
            var comment = await bot.ReportSweepAsync(pullRequest, report).ConfigureAwait(false);
            if (round == MaxRounds || (await StatesAsync(sweep, cancellationToken).ConfigureAwait(false)).SequenceEqual(before))
            {
                return (report, comment);
            }
        }
    }

    private async Task<List<RunStatus?>> StatesAsync(SweepRecord sweep, CancellationToken cancellationToken)
    {
        var states = new List<RunStatus?>();
        foreach (var v in sweep.Variants)
        {
            states.Add((await Loader.Runs.GetAsync(v.RunId, cancellationToken).ConfigureAwait(false))?.Record.Status);
        }

        return states;
    }

    private async Task<Dictionary<string, string>> PublishImagesAsync(RunComparison comparison, ComparisonInput input, CancellationToken cancellationToken)
    {
        var urls = new Dictionary<string, string>(StringComparer.Ordinal);
        if (publisher is null)
        {
            return urls;
        }

        var folder = Path.Combine(Path.GetTempPath(), "wf-sweep-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            foreach (var file in ComparisonImages.Write(folder, comparison, input))
            {
                var published = await publisher.PublishAsync(await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false), ".png", cancellationToken).ConfigureAwait(false);
                urls[Path.GetFileName(file)] = published.Url.ToString();
            }
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }

        return urls;
    }
}
