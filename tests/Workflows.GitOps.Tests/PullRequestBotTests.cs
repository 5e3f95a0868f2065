using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Comments;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Guard;
using Workflows.GitOps.Runs;
using Workflows.GitOps.Tests.Fakes;

namespace Workflows.GitOps.Tests;

/// <summary>
/// The story of an experiment PR against the local GitHub server: plan comment, /run, report, and the refusals.
/// The submitter stands in for the engine (built elsewhere); it records what it was asked and returns at once,
/// which is the contract <see cref="IRunSubmitter"/> states.
/// </summary>
public sealed class PullRequestBotTests : IAsyncLifetime
{
    private const string Api = "/api/v3/repos/acme/longctx";
    private static readonly string Sha = "c0ffee0000000000000000000000000000000001";
    private FakeGitHub gh = null!;
    private PullRequestBot bot = null!;
    private readonly RecordingSubmitter submitter = new();

    private sealed class RecordingSubmitter : IRunSubmitter
    {
        public ConcurrentQueue<RunRequest> Requests { get; } = new();

        public Task<SubmittedRun> SubmitAsync(RunRequest request, CancellationToken cancellationToken = default)
        {
            Requests.Enqueue(request);
            return Task.FromResult(new SubmittedRun($"run-{Requests.Count}", new Uri($"https://runs.example.com/run-{Requests.Count}")));
        }
    }

    public async Task InitializeAsync()
    {
        gh = await FakeGitHub.StartAsync();
        gh.Collaborators["maria"] = ("write", "maintain");
        gh.Collaborators["visitor"] = ("read", "read");
        bot = new PullRequestBot(new GitHubRepoClient(new GitHubSettings(new RepoRef("acme", "longctx"), gh.Token, gh.BaseUrl)), "github-actions[bot]");
    }

    public async Task DisposeAsync() => await gh.DisposeAsync();

    /// <summary>The submitter reads the changed file's repository path as is (the CLI maps it into the head checkout).</summary>
    private static string PathOf(string repositoryPath) => repositoryPath;

    private static PlanCommentInput InvalidPlan() =>
        new("experiments/smoke.yaml", Sha, null, null,
            [new Diagnostic(new SourceLocation("experiments/smoke.yaml", 3, 1), DiagnosticCode.UnknownKey, "foo", "unknown key 'foo'", null)]);

    [Fact]
    public async Task Plan_then_run_then_report_edits_one_comment_and_moves_the_status_from_pending_to_success()
    {
        gh.AddPullRequest(12, "alice", Sha, null, ("experiments/smoke.yaml", "added"), ("README.md", "modified"));

        // 1. pull_request opened: the plan job posts the plan (invalid at first, then fixed by a push).
        var first = await bot.PostPlansAsync(12, [InvalidPlan()]);
        gh.Comments.Single().Body.Should().Contain("validation failed");
        var replanned = await bot.GitHub.UpsertSectionAsync(12, "smoke", CommentSections.Plan, "### Experiment `smoke`: plan\n\nplan text", "github-actions[bot]");
        replanned.CommentId.Should().Be(first[0].CommentId);

        // 2. A maintainer comments /run.
        gh.ClearRequests();
        var outcome = await bot.HandleTriggerAsync(
            new TriggerContext("issue_comment", "created", "maria", 12, "/run smoke", TriggerId: "comment-555"), submitter, PathOf);

        outcome.Decision.Verdict.Should().Be(GuardVerdict.Run);
        submitter.Requests.Should().ContainSingle().Which.Should().Be(
            new RunRequest("smoke", "experiments/smoke.yaml", new RepoRef("acme", "longctx"), 12, Sha, "alice", "maria", "comment-555"));
        var commentId = first[0].CommentId;
        gh.Requests.Select(r => r.ToString()).Should().Equal(
            $"GET {Api}/pulls/12",
            $"GET {Api}/pulls/12/files?per_page=100",
            $"GET {Api}/collaborators/maria/permission",
            $"GET {Api}/issues/12/comments?sort=created&direction=asc&per_page=100",
            $"PATCH {Api}/issues/comments/{commentId}",
            $"POST {Api}/statuses/{Sha}");
        JsonNode.DeepEquals(gh.Requests[^1].Json, new JsonObject
        {
            ["state"] = "pending", ["target_url"] = "https://runs.example.com/run-1", ["description"] = "run run-1 submitted", ["context"] = "wf/experiment/smoke",
        }).Should().BeTrue(gh.Requests[^1].Body);
        gh.Comments.Single().Body.Should().Contain("run `run-1` submitted").And.Contain("plan text");

        // 3. The engine's report step (or `wf report --run run-1 --pr 12`) posts the results, twice: idempotent.
        var report = new RunReport("smoke", "run-1", RunState.Succeeded, Sha, "maria",
            new Uri("https://blobs.example.com/public/heatmaps/0a1b2c.png"), 0.91, "| domain | loss |\n|---|---|\n| Book | 2.1 |\n", "original-5b-80k");
        var done = await bot.ReportAsync(12, report);
        gh.ClearRequests();
        var again = await bot.ReportAsync(12, report);

        (done.CommentId, again.CommentId, again.Action).Should().Be((commentId, commentId, StickyAction.Unchanged));
        gh.Requests.Select(r => r.Method).Should().Equal("GET", "POST");
        gh.Comments.Should().ContainSingle();
        var body = gh.Comments[0].Body;
        body.Should().StartWith("<!-- wf:experiment=smoke -->")
            .And.Contain("run `run-1` succeeded")
            .And.Contain("![needle-in-a-haystack heatmap of smoke](https://blobs.example.com/public/heatmaps/0a1b2c.png)")
            .And.Contain("| mean needle score | 0.910 |")
            .And.Contain("plan text");
        gh.Statuses.Select(s => (s.Sha, s.State, s.Context)).Should().Equal(
            (Sha, "pending", "wf/experiment/smoke"), (Sha, "success", "wf/experiment/smoke"), (Sha, "success", "wf/experiment/smoke"));
    }

    [Fact]
    public async Task A_fork_s_run_is_refused_without_asking_for_permissions_or_writing_anything()
    {
        gh.AddPullRequest(13, "eve", Sha, "eve/longctx", ("experiments/smoke.yaml", "added"));

        var outcome = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "maria", 13, "/run"), submitter, PathOf);

        outcome.Decision.Verdict.Should().Be(GuardVerdict.Refuse);
        outcome.Decision.Reason.Should().Contain("fork");
        submitter.Requests.Should().BeEmpty();
        gh.Requests.Select(r => r.ToString()).Should().Equal($"GET {Api}/pulls/13", $"GET {Api}/pulls/13/files?per_page=100");
        gh.Comments.Should().BeEmpty();
        gh.Statuses.Should().BeEmpty();
    }

    [Fact]
    public async Task A_reader_s_run_is_refused()
    {
        gh.AddPullRequest(14, "alice", Sha, null, ("experiments/smoke.yaml", "added"));

        var outcome = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "visitor", 14, "/run"), submitter, PathOf);

        outcome.Decision.Reason.Should().StartWith("visitor has read permission");
        submitter.Requests.Should().BeEmpty();
        gh.Requests.Should().OnlyContain(r => r.Method == "GET");
    }

    [Fact]
    public async Task An_ordinary_comment_costs_no_API_call()
    {
        var outcome = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "maria", 14, "Looks good to me"), submitter, PathOf);

        outcome.Decision.Verdict.Should().Be(GuardVerdict.Ignore);
        gh.Requests.Should().BeEmpty();
    }

    [Fact]
    public async Task The_run_label_handed_over_by_workflow_run_submits_for_whoever_labeled_and_is_removed_afterwards()
    {
        var pr = gh.AddPullRequest(15, "alice", Sha, null, ("experiments/smoke.yaml", "modified"), ("experiments/sub/per-source-1b-80k.yaml", "added"));
        gh.AddLabel(15, "run-experiment", "maria");

        // workflow_run's own actor is whoever triggered the pull-request side; the guard asks the API who labeled.
        var outcome = await bot.HandleTriggerAsync(
            new TriggerContext("workflow_run", "completed", "alice", 15, TriggerId: "run-77", ApprovedHeadSha: Sha), submitter, PathOf);

        outcome.Decision.Verdict.Should().Be(GuardVerdict.Run, outcome.Decision.Reason);
        outcome.Requester.Should().Be("maria");
        outcome.Submitted.Select(s => s.Experiment).Should().Equal("per-source-1b-80k", "smoke");
        submitter.Requests.Select(r => (r.ExperimentPath, r.RequestedBy)).Should().Equal(
            ("experiments/sub/per-source-1b-80k.yaml", "maria"), ("experiments/smoke.yaml", "maria"));
        gh.Requests.Should().Contain(r => r.ToString() == $"GET {Api}/issues/15/events?per_page=100");
        gh.Requests.Should().Contain(r => r.ToString() == $"GET {Api}/collaborators/maria/permission");
        gh.Statuses.Select(s => s.Context).Should().Equal("wf/experiment/per-source-1b-80k", "wf/experiment/smoke");
        pr.Labels.Should().BeEmpty();
        gh.Requests[^1].ToString().Should().Be($"DELETE {Api}/issues/15/labels/run-experiment");
    }

    [Fact]
    public async Task The_label_handover_refuses_a_labeler_without_write_a_moved_head_and_a_pr_without_the_label()
    {
        gh.AddPullRequest(20, "alice", Sha, null, ("experiments/smoke.yaml", "added"));
        gh.AddLabel(20, "run-experiment", "visitor");
        gh.AddPullRequest(21, "alice", Sha, null, ("experiments/smoke.yaml", "added"));
        gh.AddLabel(21, "run-experiment", "maria");
        gh.Push(21, new string('9', 40));
        gh.AddPullRequest(22, "alice", Sha, null, ("experiments/smoke.yaml", "added"));

        var triage = await bot.HandleTriggerAsync(new TriggerContext("workflow_run", "completed", "visitor", 20, ApprovedHeadSha: Sha), submitter, PathOf);
        var moved = await bot.HandleTriggerAsync(new TriggerContext("workflow_run", "completed", "maria", 21, ApprovedHeadSha: Sha), submitter, PathOf);
        var unlabeled = await bot.HandleTriggerAsync(new TriggerContext("workflow_run", "completed", "maria", 22, ApprovedHeadSha: Sha), submitter, PathOf);

        triage.Decision.Reason.Should().StartWith("visitor has read permission");
        moved.Decision.Reason.Should().Contain("approved commit c0ffee0, but the head of pull request #21 is now 9999999");
        unlabeled.Decision.Verdict.Should().Be(GuardVerdict.Ignore);
        submitter.Requests.Should().BeEmpty();
        gh.Requests.Should().OnlyContain(r => r.Method == "GET", "a refusal writes nothing");
    }

    [Fact]
    public async Task A_push_after_the_run_comment_is_refused_and_a_comment_after_the_push_runs()
    {
        gh.AddPullRequest(23, "alice", Sha, null, ("experiments/smoke.yaml", "added"));
        gh.Activity.Add(("refs/heads/feature", "branch_creation", new string('0', 40), Sha, gh.Tick(), "alice"));
        var commented = gh.Tick();
        var pushed = gh.Push(23, new string('7', 40));

        var raced = await bot.DecideAsync(new TriggerContext("issue_comment", "created", "maria", 23, "/run", RequestedAt: commented));
        var later = await bot.DecideAsync(new TriggerContext("issue_comment", "created", "maria", 23, "/run", RequestedAt: gh.Tick()));
        var exact = await bot.DecideAsync(new TriggerContext("issue_comment", "created", "maria", 23, "/run @7777777", RequestedAt: commented));

        raced.Decision.Verdict.Should().Be(GuardVerdict.Refuse);
        raced.Decision.Reason.Should().Contain($"pushed at {pushed.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z, after the /run request");
        later.Decision.Should().BeEquivalentTo(new { Verdict = GuardVerdict.Run, HeadSha = new string('7', 40) });
        exact.Decision.Verdict.Should().Be(GuardVerdict.Run);
        gh.Requests.Should().Contain(r => r.ToString() == $"GET {Api}/activity?ref=refs%2Fheads%2Ffeature&direction=desc&per_page=100"
                                          || r.ToString() == $"GET {Api}/activity?ref=refs/heads/feature&direction=desc&per_page=100");
    }

    [Fact]
    public async Task Without_the_activity_log_a_run_needs_an_exact_commit()
    {
        gh.AddPullRequest(24, "alice", Sha, null, ("experiments/smoke.yaml", "added"));
        gh.Forbidden.Add("/activity");

        var refused = await bot.DecideAsync(new TriggerContext("issue_comment", "created", "maria", 24, "/run", RequestedAt: gh.Tick()));
        var exact = await bot.DecideAsync(new TriggerContext("issue_comment", "created", "maria", 24, $"/run @{Sha}", RequestedAt: gh.Tick()));

        refused.Decision.Reason.Should().Contain("cannot read the branch's push log").And.Contain("403").And.Contain("/run @c0ffee0");
        exact.Decision.Verdict.Should().Be(GuardVerdict.Run);
    }

    [Fact]
    public async Task An_experiment_that_asks_for_the_two_person_rule_gets_it()
    {
        var dir = Directory.CreateTempSubdirectory("wf-two-person-");
        try
        {
            Directory.CreateDirectory(Path.Combine(dir.FullName, "experiments"));
            File.WriteAllText(Path.Combine(dir.FullName, "experiments", "strict.yaml"), "name: strict\ngitops: { require_other_approver: true }\n");
            File.WriteAllText(Path.Combine(dir.FullName, "experiments", "relaxed.yaml"), "name: relaxed\n");
            gh.Collaborators["alice"] = ("admin", "admin");
            gh.AddPullRequest(25, "alice", Sha, null, ("experiments/strict.yaml", "added"));
            gh.AddPullRequest(26, "alice", Sha, null, ("experiments/relaxed.yaml", "added"));
            string InHead(string path) => Path.Combine(dir.FullName, path);

            var own = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "alice", 25, "/run"), submitter, InHead);
            var ownRelaxed = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "alice", 26, "/run"), submitter, InHead);
            var other = await bot.HandleTriggerAsync(new TriggerContext("issue_comment", "created", "maria", 25, "/run"), submitter, InHead);

            own.Decision.Verdict.Should().Be(GuardVerdict.Refuse);
            own.Decision.Reason.Should().Contain("strict sets gitops.require_other_approver");
            ownRelaxed.Decision.Verdict.Should().Be(GuardVerdict.Run);
            other.Decision.Verdict.Should().Be(GuardVerdict.Run);
            submitter.Requests.Select(r => (r.Experiment, r.RequestedBy)).Should().Equal(("relaxed", "alice"), ("strict", "maria"));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_failed_run_reports_failure_on_the_head_sha()
    {
        gh.AddPullRequest(16, "alice", Sha);

        await bot.ReportAsync(16, new RunReport("smoke", "run-9", RunState.Failed, Sha, Error: "train: NaN loss at step 3"));

        gh.Statuses.Should().ContainSingle().Which.Should().BeEquivalentTo(new { State = "failure", Description = "run run-9 failed" });
        gh.Statuses[0].TargetUrl.Should().Be(gh.Comments.Single().Id is var id ? $"https://github.example.com/acme/longctx/pull/16#issuecomment-{id}" : null,
            "without a details URL the status links to the comment");
    }

    [Fact]
    public async Task Submit_refuses_when_the_head_moved_since_the_guard_approved_it()
    {
        gh.AddPullRequest(17, "alice", Sha, null, ("experiments/smoke.yaml", "added"));
        var guard = await bot.DecideAsync(new TriggerContext("issue_comment", "created", "maria", 17, "/run"));
        gh.PullRequests[17].HeadSha = new string('d', 40);

        var outcome = await bot.HandleTriggerAsync(
            new TriggerContext("issue_comment", "created", "maria", 17, "/run", ExpectedHeadSha: guard.PullRequest!.HeadSha), submitter, PathOf);

        guard.Decision.Verdict.Should().Be(GuardVerdict.Run);
        outcome.Decision.Verdict.Should().Be(GuardVerdict.Refuse);
        submitter.Requests.Should().BeEmpty();
        gh.Requests.Should().OnlyContain(r => r.Method == "GET", "the guard writes nothing");
    }

    [Fact]
    public async Task Plan_inputs_come_from_files_through_the_real_loader_and_planner()
    {
        var dir = Directory.CreateTempSubdirectory("wf-gitops-");
        try
        {
            var good = Path.Combine(dir.FullName, "tiny-run.yaml");
            var bad = Path.Combine(dir.FullName, "broken.yaml");
            File.WriteAllText(good, "name: tiny-run\nprofile: smoke\nmodel: { base: tiny }\ndata: { token_budget: 96K, context: 1K, tokenizer: gpt2 }\n");
            File.WriteAllText(bad, "name: broken\nmodel: { base: tiny }\ndata: { token_budget: 96K, context: 1K, colour: blue }\n");
            var off = new LoadOptions(PolicyMode.Off);

            var valid = PlanCommentInputs.FromFile(good, "experiments/tiny-run.yaml", Sha, p => $"plan of {p.Experiment}", off);
            var invalid = PlanCommentInputs.FromFile(bad, "experiments/broken.yaml", Sha, p => "unused", off);
            gh.AddPullRequest(18, "alice", Sha);
            await bot.PostPlansAsync(18, [valid, invalid]);

            valid.Errors.Should().BeEmpty();
            valid.Plan!.Experiment.Should().Be("tiny-run");
            invalid.Errors.Should().NotBeEmpty().And.OnlyContain(d => d.Location.File == "experiments/broken.yaml");
            gh.Comments.Select(c => CommentMarker.ExperimentOf(c.Body)).Should().Equal("tiny-run", "broken");
            gh.Comments[0].Body.Should().Contain("plan of tiny-run").And.Contain("GPU-hours");
            gh.Comments[1].Body.Should().Contain("validation failed").And.Contain($"`experiments/broken.yaml:{invalid.Errors[0].Location.Line}:{invalid.Errors[0].Location.Column}`");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
