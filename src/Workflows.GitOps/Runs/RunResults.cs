using Workflows.Experiments.Templates;
using System.Text.Json.Nodes;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Publishing;

namespace Workflows.GitOps.Runs;

/// <summary>
/// Turns a run record and its published outputs into the <see cref="RunReport"/> the PR comment shows: state, heatmap
/// (published to the reports container under its content hash, so the URL is stable), mean needle score, the needle and
/// loss tables from the report step's report.md, links to report.md/report.json, step durations, the error, and for a
/// rerun the comparison with the archived run.
/// </summary>
public sealed class RunResults(IArtifactStore store, ReportPublisher? publisher)
{
    public RunOutputsReader Outputs { get; } = new(store);
    public RunRecordStore Runs { get; } = new(store);

    public static RunState StateOf(RunStatus status) => status switch
    {
        RunStatus.Submitted => RunState.Submitted,
        RunStatus.Running => RunState.Running,
        RunStatus.Succeeded => RunState.Succeeded,
        RunStatus.Failed => RunState.Failed,
        _ => RunState.Cancelled,
    };

    public async Task<RunReport> BuildAsync(RunRecord record, CancellationToken cancellationToken = default)
    {
        Uri? heatmap = null;
        NeedleHeadline? needle = null;
        string? needleTable = null, lossTable = null, baseline = null, haystack = null, effective = null;
        var artifacts = new List<ArtifactLink>();
        if (await Outputs.OutputOfAsync(record, StepContracts.Report.Type, cancellationToken).ConfigureAwait(false) is { } report)
        {
            var json = await Outputs.ReadTextAsync(report, "report/report.json", cancellationToken).ConfigureAwait(false);
            var node = json is null ? null : JsonNode.Parse(json);
            needle = NeedleHeadline.Of(node);
            effective = EffectiveLengthOf(node?["needle"]);
            baseline = node?["baseline"]?.GetValue<string>();
            if (node?["needle"]?["haystack"] is { } h && h["name"]?.GetValue<string>() is { } haystackName)
            {
                var sha = h["sha256"]?.GetValue<string>() ?? "";
                haystack = sha.Length == 64 ? $"{haystackName} (sha256 {sha[..12]})" : haystackName;
            }

            var markdown = await Outputs.ReadTextAsync(report, "report/report.md", cancellationToken).ConfigureAwait(false);
            if (markdown is not null)
            {
                needleTable = TableAfter(markdown, "| context length |");
                lossTable = Section(markdown, "## Validation loss by domain and length bucket");
            }

            if (publisher is not null)
            {
                if (await Outputs.ReadAsync(report, "report/needle-heatmap.png", cancellationToken).ConfigureAwait(false) is { } png)
                {
                    heatmap = (await publisher.PublishAsync(png, ".png", cancellationToken).ConfigureAwait(false)).Url;
                }

                foreach (var (path, name) in new[] { ("report/report.md", "report.md"), ("report/report.json", "report.json") })
                {
                    if (await Outputs.ReadAsync(report, path, cancellationToken).ConfigureAwait(false) is { } bytes)
                    {
                        artifacts.Add(new ArtifactLink(name, (await publisher.PublishAsync(bytes, Path.GetExtension(path), cancellationToken).ConfigureAwait(false)).Url));
                    }
                }
            }
        }

        string? comparison = null;
        if (record.RerunOf is { } archivedId && await Runs.GetAsync(archivedId, cancellationToken).ConfigureAwait(false) is { } archived)
        {
            comparison = (await RerunComparison.CompareAsync(Outputs, archived.Record, record, cancellationToken).ConfigureAwait(false)).ToMarkdown();
        }

        var durations = record.Steps
            .Where(s => s.StartedAt is not null && s.CompletedAt is not null)
            .Select(s => new StepDuration(s.Step + (s.Cached ? " (cached)" : ""), s.CompletedAt!.Value - s.StartedAt!.Value))
            .ToList();
        return new RunReport(
            record.ExperimentName,
            record.RunId,
            StateOf(record.Status),
            HeadSha: record.Origin?.HeadSha,
            RequestedBy: record.Origin?.RequestedBy,
            HeatmapUrl: heatmap,
            MeanNeedleScore: needle?.Mean,
            LossTableMarkdown: lossTable,
            Baseline: baseline,
            Artifacts: artifacts,
            Durations: durations,
            Total: record.Duration,
            Error: record.Error,
            NeedleTableMarkdown: needleTable is null ? null : "Mean needle score by context length:\n\n" + needleTable,
            ComparisonMarkdown: comparison,
            Haystack: haystack,
            EffectiveLength: effective,
            NeedleDisabled: needle?.Disabled ?? false);
    }

    /// <summary>The report's effective length with its threshold ("4,256 tokens (every length up to it ≥ 0.856)"), or null for reports without one.</summary>
    public static string? EffectiveLengthOf(JsonNode? needle)
    {
        if (needle?["effective_length_threshold"]?.GetValue<double>() is not { } threshold)
        {
            return null;
        }

        var rule = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"every length up to it ≥ {threshold:0.###}");
        return needle["effective_length"]?.GetValue<long>() is { } length
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{length:N0} tokens ({rule})")
            : $"none ({rule} fails at the shortest length)";
    }

    /// <summary>Builds the report and puts it on the PR: the run section of the experiment's sticky comment and the commit status.</summary>
    public async Task<(RunReport Report, StickyCommentResult Comment)> ReportAsync(PullRequestBot bot, RunRecord record, int pullRequest, CancellationToken cancellationToken = default)
    {
        // A run started by hand has no head SHA: the comment is still written, without a commit status.
        var report = await BuildAsync(record, cancellationToken).ConfigureAwait(false);
        var comment = await bot.ReportAsync(pullRequest, report).ConfigureAwait(false);
        return (report, comment);
    }

    /// <summary>The Markdown table that starts with the line beginning <paramref name="header"/>, or null.</summary>
    public static string? TableAfter(string markdown, string header)
    {
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var start = Array.FindIndex(lines, l => l.StartsWith(header, StringComparison.Ordinal));
        if (start < 0)
        {
            return null;
        }

        return string.Join('\n', lines.Skip(start).TakeWhile(l => l.StartsWith('|'))) + "\n";
    }

    /// <summary>The body of the section under <paramref name="heading"/> up to the next heading of level 1 or 2, or null.</summary>
    public static string? Section(string markdown, string heading)
    {
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var start = Array.FindIndex(lines, l => l.StartsWith(heading, StringComparison.Ordinal));
        if (start < 0)
        {
            return null;
        }

        var body = lines.Skip(start + 1).TakeWhile(l => !l.StartsWith("# ", StringComparison.Ordinal) && !l.StartsWith("## ", StringComparison.Ordinal));
        var text = string.Join('\n', body).Trim('\n');
        return text.Length == 0 ? null : text + "\n";
    }
}

/// <summary>
/// The engine's run-finished hook for GitHub: when a run that a pull request asked for ends (succeeded or failed), its
/// results go to the PR's sticky comment and commit status. Installed in a worker only when it has a GitHub token
/// (<c>wf worker</c>/<c>wf run</c> with GITHUB_TOKEN set). A variant of a sweep updates the sweep's comment instead of
/// one of its own. Idempotent: a second call edits nothing.
/// </summary>
public sealed class GitHubRunFinishedHook(IArtifactStore store, ReportPublisher? publisher, string token, Uri? apiBaseUrl, string? botLogin = null)
    : IRunFinishedHook
{
    public async Task OnRunFinishedAsync(RunRecord record, CancellationToken cancellationToken = default)
    {
        if (record.Origin is not { } origin)
        {
            return;
        }

        var github = new GitHubRepoClient(new GitHubSettings(RepoRef.Parse(origin.Repository), token, apiBaseUrl));
        var bot = new PullRequestBot(github, botLogin);
        if (record.SweepId is { } sweepId && await new SweepRecordStore(store).GetAsync(sweepId, cancellationToken).ConfigureAwait(false) is { } sweep)
        {
            // A sweep's variant: the sweep's one comment shows every variant and their comparison.
            await new SweepResults(store, publisher).ReportAsync(bot, sweep.Record, origin.PullRequest, cancellationToken).ConfigureAwait(false);
            return;
        }

        await new RunResults(store, publisher).ReportAsync(bot, record, origin.PullRequest, cancellationToken).ConfigureAwait(false);
    }
}
