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

    private static string PathOf(string experiment) => $"experiments/{experiment}.yaml";

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
    public async Task The_run_label_submits_every_changed_experiment_and_is_removed_afterwards()
    {
        var pr = gh.AddPullRequest(15, "alice", Sha, null, ("experiments/smoke.yaml", "modified"), ("experiments/per-source-1b-80k.yaml", "added"));
        pr.Labels.Add("run-experiment");

        var outcome = await bot.HandleTriggerAsync(new TriggerContext("pull_request", "labeled", "maria", 15, Label: "run-experiment"), submitter, PathOf);

        outcome.Submitted.Select(s => s.Experiment).Should().Equal("per-source-1b-80k", "smoke");
        submitter.Requests.Select(r => r.ExperimentPath).Should().Equal("experiments/per-source-1b-80k.yaml", "experiments/smoke.yaml");
        gh.Comments.Select(c => CommentMarker.ExperimentOf(c.Body)).Should().Equal("per-source-1b-80k", "smoke");
        gh.Statuses.Select(s => s.Context).Should().Equal("wf/experiment/per-source-1b-80k", "wf/experiment/smoke");
        pr.Labels.Should().BeEmpty();
        gh.Requests[^1].ToString().Should().Be($"DELETE {Api}/issues/15/labels/run-experiment");
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
