using Workflows.Experiments.Planning;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Guard;
using Workflows.GitOps.Runs;
using Workflows.GitOps.Tests.Fakes;

namespace Workflows.GitOps.Tests;

/// <summary>
/// A sweep's one sticky comment against the local GitHub server: the plan of every variant, /run submitting the
/// sweep, then the run section rewritten as variants finish, with the commit status pending until all have.
/// </summary>
public sealed class SweepCommentTests : IAsyncLifetime
{
    private const string Api = "/api/v3/repos/acme/longctx";
    private const string Sha = "5eed000000000000000000000000000000000001";
    private FakeGitHub gh = null!;
    private PullRequestBot bot = null!;

    /// <summary>Stands in for the engine: a sweep file is submitted as a sweep of its variants (what EngineRunSubmitter returns).</summary>
    private sealed class SweepSubmitter : IRunSubmitter
    {
        public Task<SubmittedRun> SubmitAsync(RunRequest request, CancellationToken cancellationToken = default) =>
            Task.FromResult(new SubmittedRun("pr21-paper-table3-0123456789", Sweep: Report(RunState.Submitted, RunState.Submitted, RunState.Submitted)));
    }

    public async Task InitializeAsync()
    {
        gh = await FakeGitHub.StartAsync();
        gh.Collaborators["maria"] = ("write", "maintain");
        bot = new PullRequestBot(new GitHubRepoClient(new GitHubSettings(new RepoRef("acme", "longctx"), gh.Token, gh.BaseUrl)), "github-actions[bot]");
    }

    public async Task DisposeAsync() => await gh.DisposeAsync();

    private static SweepReport Report(params RunState?[] states) => new(
        "paper-table3",
        "pr21-paper-table3-0123456789",
        [.. states.Select((s, i) => new SweepVariantState(i + 1, $"paper-table3-v{i + 1}", $"pr21-paper-table3-0123456789-0{i + 1}", s, $"training.lr = lr-{i + 1}",
            s == RunState.Succeeded ? 0.25 * (i + 1) : null,
            s == RunState.Succeeded ? "none: 0.250 at 256 < 0.856" : null,
            s is RunState.Succeeded or RunState.Failed ? TimeSpan.FromSeconds(70 + i) : null,
            s == RunState.Failed ? "step 'train': out of memory" : null))],
        Sha,
        "maria",
        states.Any(s => s == RunState.Succeeded) ? "##### Runs and the parameters that differ\n\n| run | experiment |\n|---|---|\n" : null);

    [Fact]
    public async Task One_comment_plans_the_sweep_then_follows_its_variants_until_all_finished()
    {
        gh.AddPullRequest(21, "alice", Sha, null, ("experiments/paper-table3.yaml", "added"));

        // The plan: a real sweep file planned by the real planner (the sweep tables come from the CLI; a stub here).
        var plan = PlanCommentInputs.FromFile(Path.Combine(Repo.Root, "experiments", "paper-table3.yaml"), "experiments/paper-table3.yaml", Sha,
            p => $"PLAN OF {p.Experiment}", new LoadOptions(WorkflowsDirectory: Path.Combine(Repo.Root, "workflows")), sweepToMarkdown: p => $"SWEEP TABLES OF {p.Sweep}");
        plan.Errors.Should().BeEmpty();
        plan.Sweep!.Steps!.Single(s => s.Step == SweepPlanner.MeasureStep).Executions.Should().Be(1, "six mixtures of one corpus measure it once");
        await bot.PostPlansAsync(21, [plan]);
        var comment = gh.Comments.Should().ContainSingle().Which;
        comment.Body.Should().StartWith("<!-- wf:experiment=paper-table3 -->")
            .And.Contain("### Sweep `paper-table3`: plan of 6 variants")
            .And.Contain("**Estimated training compute of the sweep: 5,757.2 GPU-hours on 8× a100-80g, $19,574**")
            .And.Contain("SWEEP TABLES OF paper-table3")
            .And.Contain("<details><summary>Plan of original-5b-80k</summary>\n\nPLAN OF original-5b-80k")
            .And.Contain("<details><summary>Plan of arxiv-up-5b-80k</summary>")
            .And.Contain("A maintainer starts all 6 runs by commenting `/run paper-table3`");

        // /run: the submitter returns the sweep; the run section lists every variant as submitted.
        gh.ClearRequests();
        var outcome = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "maria", 21, "/run", TriggerId: "9"), new SweepSubmitter(),
            e => $"experiments/{e}.yaml");
        outcome.Decision.Verdict.Should().Be(GuardVerdict.Run);
        gh.Requests[^1].ToString().Should().Be($"POST {Api}/statuses/{Sha}");
        gh.Comments.Single().Body.Should().Contain("### Sweep `paper-table3`: 3 variants submitted").And.Contain("SWEEP TABLES OF paper-table3");

        // Variants finish one by one: the same comment is rewritten each time, the status stays pending until the last.
        await bot.ReportSweepAsync(21, Report(RunState.Succeeded, RunState.Running, RunState.Submitted));
        gh.Comments.Single().Body.Should().Contain("### Sweep `paper-table3`: 1 of 3 variants finished").And.Contain("#### Comparison so far (1 of 3 succeeded)");
        await bot.ReportSweepAsync(21, Report(RunState.Succeeded, RunState.Failed, RunState.Running));
        gh.Comments.Single().Body.Should().Contain("2 of 3 variants finished").And.Contain("`paper-table3-v2` failed:\n\n```text\nstep 'train': out of memory\n```");
        await bot.ReportSweepAsync(21, Report(RunState.Succeeded, RunState.Failed, RunState.Succeeded));
        var body = gh.Comments.Should().ContainSingle("every update edits the one comment").Which.Body;
        body.Should().Contain("### Sweep `paper-table3`: all 3 variants finished (2 succeeded, 1 failed)").And.Contain("#### Comparison\n");
        gh.Statuses.Select(s => (s.State, s.Context)).Should().Equal(
            ("pending", "wf/experiment/paper-table3"), ("pending", "wf/experiment/paper-table3"), ("pending", "wf/experiment/paper-table3"), ("failure", "wf/experiment/paper-table3"));
        gh.Statuses[^1].Description.Should().Be("sweep pr21-paper-table3-0123456789: 2 of 3 variants succeeded, best mean needle score 0.750 (paper-table3-v3)");

        // The same report again edits nothing.
        gh.ClearRequests();
        await bot.ReportSweepAsync(21, Report(RunState.Succeeded, RunState.Failed, RunState.Succeeded));
        gh.Requests.Select(r => r.Method).Should().Equal("GET", "POST");
    }

    [Fact]
    public void Sweep_results_section_matches_the_golden() =>
        Golden.Verify("sweep-results.md", SweepComment.Render(Report(RunState.Succeeded, RunState.Failed, RunState.Cancelled) with
        {
            ComparisonMarkdown = "##### Runs and the parameters that differ\n\n| run | experiment | state | `training.lr` |\n|---|---|---|---|\n| `r1` | `paper-table3-v1` (baseline) | succeeded | 0.001 |\n",
        }));

    [Theory]
    [InlineData(new[] { RunState.Succeeded, RunState.Succeeded }, "success")]
    [InlineData(new[] { RunState.Succeeded, RunState.Cancelled }, "error")]
    [InlineData(new[] { RunState.Failed, RunState.Cancelled }, "failure")]
    [InlineData(new[] { RunState.Succeeded, RunState.Running }, "pending")]
    public void The_status_of_a_sweep_is_pending_until_all_finished_then_its_worst_outcome(RunState[] states, string expected) =>
        Report([.. states.Cast<RunState?>()]).StatusState.ToString().ToLowerInvariant().Should().Be(expected);

    [Fact]
    public void A_variant_the_engine_refused_counts_as_finished_and_failed()
    {
        var report = Report(RunState.Succeeded, null);
        report.IsFinished.Should().BeTrue();
        report.StatusState.Should().Be(CommitStatusState.Failure);
        SweepComment.Render(report).Should().Contain("| not submitted |");
    }
}

/// <summary>The repository root (three levels above the golden files).</summary>
internal static class Repo
{
    public static string Root { get; } = Path.GetFullPath(Path.Combine(Golden.Directory, "..", "..", ".."));
}
