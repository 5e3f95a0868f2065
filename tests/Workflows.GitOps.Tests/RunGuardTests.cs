using Workflows.GitOps.GitHub;
using Workflows.GitOps.Guard;

namespace Workflows.GitOps.Tests;

public class RunGuardTests
{
    private static readonly string Sha = "0123456789abcdef0123456789abcdef01234567";

    private static PullRequestInfo Pr(bool fork = false, bool open = true) =>
        new(12, "acme/longctx", fork ? "eve/longctx" : "acme/longctx", "feature", Sha, "alice", open, false, []);

    private static GuardInput Comment(string body, RepoPermission permission = RepoPermission.Write, PullRequestInfo? pr = null, string actor = "maria", string action = "created") =>
        new("issue_comment", action, actor, permission, pr ?? Pr(), CommentBody: body, ChangedExperiments: ["smoke", "per-source-5b-80k"]);

    [Theory]
    [InlineData("opened")]
    [InlineData("synchronize")]
    [InlineData("reopened")]
    [InlineData("ready_for_review")]
    public void Pull_request_updates_plan_only_even_from_forks(string action)
    {
        var decision = RunGuard.Decide(new GuardInput("pull_request", action, "eve", RepoPermission.None, Pr(fork: true)));

        decision.Verdict.Should().Be(GuardVerdict.PlanOnly);
    }

    [Theory]
    [InlineData("closed")]
    [InlineData("assigned")]
    [InlineData("unlabeled")]
    public void Other_pull_request_actions_are_ignored(string action) =>
        RunGuard.Decide(new GuardInput("pull_request", action, "alice", RepoPermission.Admin, Pr())).Verdict.Should().Be(GuardVerdict.Ignore);

    [Fact]
    public void Pull_request_target_is_refused_whoever_asks()
    {
        var decision = RunGuard.Decide(new GuardInput("pull_request_target", "opened", "maria", RepoPermission.Admin, Pr()));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().Contain("secrets");
    }

    [Fact]
    public void Run_by_a_writer_on_our_own_branch_runs_every_changed_experiment()
    {
        var decision = RunGuard.Decide(Comment("/run"));

        decision.Verdict.Should().Be(GuardVerdict.Run);
        decision.Experiments.Should().Equal("smoke", "per-source-5b-80k");
        decision.Reason.Should().Be("/run by maria (write) at 0123456");
    }

    [Fact]
    public void Run_with_names_runs_only_those()
    {
        var decision = RunGuard.Decide(Comment("/run smoke\nthanks!", RepoPermission.Maintain));

        decision.Should().BeEquivalentTo(new { Verdict = GuardVerdict.Run, Experiments = new[] { "smoke" } });
    }

    [Fact]
    public void Run_naming_an_experiment_the_pr_does_not_change_is_refused()
    {
        var decision = RunGuard.Decide(Comment("/run original-5b-80k"));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().Be("original-5b-80k: not an experiment this pull request adds or changes (it has: smoke, per-source-5b-80k)");
    }

    [Theory]
    [InlineData(RepoPermission.None)]
    [InlineData(RepoPermission.Read)]
    [InlineData(RepoPermission.Triage)]
    public void Run_by_someone_without_write_is_refused(RepoPermission permission)
    {
        var decision = RunGuard.Decide(Comment("/run", permission, actor: "visitor"));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().StartWith($"visitor has {permission.ToString().ToLowerInvariant()} permission");
    }

    [Theory]
    [InlineData(RepoPermission.Write)]
    [InlineData(RepoPermission.Admin)]
    public void A_fork_never_runs_even_when_an_admin_asks(RepoPermission permission)
    {
        var decision = RunGuard.Decide(Comment("/run", permission, Pr(fork: true)));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().Contain("fork (eve/longctx)");
    }

    [Fact]
    public void A_pr_whose_head_repository_was_deleted_counts_as_a_fork()
    {
        var orphan = Pr() with { HeadRepoFullName = null };

        orphan.IsFork.Should().BeTrue();
        RunGuard.Decide(Comment("/run", RepoPermission.Admin, orphan)).Verdict.Should().Be(GuardVerdict.Refuse);
    }

    [Fact]
    public void A_closed_pr_does_not_run() =>
        RunGuard.Decide(Comment("/run", pr: Pr(open: false))).Reason.Should().Contain("closed");

    [Fact]
    public void A_pr_without_experiments_does_not_run()
    {
        var decision = RunGuard.Decide(Comment("/run") with { ChangedExperiments = [] });

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().Contain("no experiment file");
    }

    [Theory]
    [InlineData("LGTM")]
    [InlineData("please /run this")]
    [InlineData("/running out of ideas")]
    [InlineData("")]
    public void Ordinary_comments_are_ignored(string body) =>
        RunGuard.Decide(Comment(body)).Verdict.Should().Be(GuardVerdict.Ignore);

    [Fact]
    public void Edited_comments_are_not_commands() =>
        RunGuard.Decide(Comment("/run", action: "edited")).Verdict.Should().Be(GuardVerdict.Ignore);

    [Fact]
    public void Bots_are_ignored_so_the_bot_cannot_trigger_itself() =>
        RunGuard.Decide(Comment("/run", RepoPermission.Admin, actor: "github-actions[bot]")).Verdict.Should().Be(GuardVerdict.Ignore);

    [Fact]
    public void Run_on_a_plain_issue_is_ignored() =>
        RunGuard.Decide(new GuardInput("issue_comment", "created", "maria", RepoPermission.Admin, null, "/run")).Verdict.Should().Be(GuardVerdict.Ignore);

    [Fact]
    public void A_malformed_name_is_refused_with_the_syntax()
    {
        var decision = RunGuard.Decide(Comment("/run Smoke!"));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().Contain("write /run or /run NAME");
    }

    [Fact]
    public void The_run_label_by_a_writer_runs_and_other_labels_are_ignored()
    {
        var labeled = new GuardInput("pull_request", "labeled", "maria", RepoPermission.Write, Pr(), Label: "run-experiment", ChangedExperiments: ["smoke"]);

        RunGuard.Decide(labeled).Should().BeEquivalentTo(new { Verdict = GuardVerdict.Run, Experiments = new[] { "smoke" } });
        RunGuard.Decide(labeled with { Label = "documentation" }).Verdict.Should().Be(GuardVerdict.Ignore);
        RunGuard.Decide(labeled with { PullRequest = Pr(fork: true) }).Verdict.Should().Be(GuardVerdict.Refuse);
        RunGuard.Decide(labeled with { ActorPermission = RepoPermission.Triage }).Verdict.Should().Be(GuardVerdict.Refuse);
    }

    [Fact]
    public void Workflow_dispatch_runs_for_writers_only()
    {
        RunGuard.Decide(new GuardInput("workflow_dispatch", null, "maria", RepoPermission.Write)).Verdict.Should().Be(GuardVerdict.Run);
        RunGuard.Decide(new GuardInput("workflow_dispatch", null, "visitor", RepoPermission.Read)).Verdict.Should().Be(GuardVerdict.Refuse);
    }

    [Fact]
    public void Push_and_unknown_events_are_ignored() =>
        RunGuard.Decide(new GuardInput("push", null, "maria", RepoPermission.Admin)).Verdict.Should().Be(GuardVerdict.Ignore);

    [Fact]
    public void Experiments_of_a_pr_are_added_or_modified_yaml_under_experiments_named_by_stem()
    {
        var files = new ChangedFile[]
        {
            new("experiments/smoke.yaml", "modified"),
            new("experiments/new-one.yml", "added"),
            new("experiments/old.yaml", "removed"),
            new("experiments/schema.json", "modified"),
            new("README.md", "modified"),
            new("experiments/Bad Name.yaml", "added"),
            new("experiments/moved.yaml", "renamed", "experiments/before.yaml"),
        };

        RunGuard.ExperimentsIn(files).Should().Equal("moved", "new-one", "smoke");
    }

    [Fact]
    public void A_head_that_moved_after_approval_is_refused()
    {
        var approved = RunGuard.Decide(Comment("/run") with { ExpectedHeadSha = Sha.ToUpperInvariant() });
        var moved = RunGuard.Decide(Comment("/run") with { ExpectedHeadSha = "ffffffffffffffffffffffffffffffffffffffff" });

        approved.Verdict.Should().Be(GuardVerdict.Run);
        moved.Verdict.Should().Be(GuardVerdict.Refuse);
        moved.Reason.Should().Contain("moved from fffffff to 0123456");
    }

    [Fact]
    public void Outputs_for_the_workflow_cannot_be_forged_through_the_reason()
    {
        var decision = GuardDecision.Refuse("'x\nverdict=run' is not an experiment name");

        var text = GitHubOutputs.Format(decision, Sha);
        var lines = text.Split('\n');

        lines[0].Should().Be("verdict=refuse");
        lines[1].Should().Be("experiments=");
        lines[2].Should().Be($"head_sha={Sha}");
        lines[3].Should().StartWith("reason<<WF_REASON_");
        var delimiter = lines[3]["reason<<".Length..];
        text.Should().EndWith($"\n{delimiter}\n");
        lines.Count(l => l == delimiter).Should().Be(1);
        GitHubOutputs.Format(GuardDecision.Run("ok", ["a", "b"]), Sha).Should().StartWith("verdict=run\nexperiments=a b\n");
    }
}
