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
        decision.Reason.Should().Contain("write /run, /run NAME or /run NAME @SHA");
    }

    [Fact]
    public void A_malformed_name_is_quoted_escaped_and_cut_in_the_reason()
    {
        var decision = RunGuard.Decide(Comment("/run \u001b[31m\u202e" + new string('x', 500)));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().StartWith("'\\e[31m\\u202e").And.Contain("(506 characters)").And.NotContain("\u001b").And.NotContain("\u202e");
        decision.Reason.Length.Should().BeLessThan(250);
    }

    [Theory]
    [InlineData("/run @0123456", "0123456")]
    [InlineData("/run smoke @0123456789ABCDEF0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567")]
    public void Run_at_a_sha_approves_that_commit(string body, string sha)
    {
        RunGuard.ParseRunCommand(body).Sha.Should().Be(sha);
        var decision = RunGuard.Decide(Comment(body));

        decision.Verdict.Should().Be(GuardVerdict.Run);
        decision.HeadSha.Should().Be(Sha);
    }

    [Theory]
    [InlineData("/run @ffffff0")]
    [InlineData("/run smoke @ffffffffffffffffffffffffffffffffffffffff")]
    public void Run_at_another_sha_than_the_head_is_refused(string body)
    {
        var decision = RunGuard.Decide(Comment(body));

        decision.Verdict.Should().Be(GuardVerdict.Refuse);
        decision.Reason.Should().Contain("approved commit ffffff").And.Contain("is now 0123456").And.Contain("/run @0123456");
    }

    [Theory]
    [InlineData("/run @012345")]
    [InlineData("/run @xyz1234")]
    [InlineData("/run @0123456 @0123457")]
    public void A_malformed_sha_is_refused_with_the_syntax(string body) =>
        RunGuard.Decide(Comment(body)).Reason.Should().Contain("write /run @SHA with 7 to 40 hex digits");

    [Fact]
    public void A_push_after_the_comment_is_refused_unless_the_comment_names_the_commit()
    {
        var pushed = new DateTimeOffset(2024, 2, 15, 12, 5, 0, TimeSpan.Zero);

        var raced = RunGuard.Decide(Comment("/run") with { PushedAfterRequest = pushed });
        var exact = RunGuard.Decide(Comment($"/run @{Sha[..7]}") with { PushedAfterRequest = pushed });

        raced.Verdict.Should().Be(GuardVerdict.Refuse);
        raced.Reason.Should().Contain("pushed at 2024-02-15 12:05:00Z, after the /run request").And.Contain("/run @0123456");
        exact.Verdict.Should().Be(GuardVerdict.Run, "the comment approved exactly the head");
    }

    [Fact]
    public void The_two_person_rule_refuses_the_authors_own_request()
    {
        var own = RunGuard.Decide(Comment("/run", RepoPermission.Admin, actor: "alice") with { RequireOtherApprover = true });
        var other = RunGuard.Decide(Comment("/run") with { RequireOtherApprover = true });
        var off = RunGuard.Decide(Comment("/run", RepoPermission.Admin, actor: "alice"));

        own.Verdict.Should().Be(GuardVerdict.Refuse);
        own.Reason.Should().Contain("alice wrote pull request #12").And.Contain("two-person rule");
        other.Verdict.Should().Be(GuardVerdict.Run);
        off.Verdict.Should().Be(GuardVerdict.Run, "without the rule a writer may run their own pull request");
    }

    [Fact]
    public void The_label_handover_runs_the_labelers_request_at_the_labeled_commit_only()
    {
        var handover = new GuardInput("workflow_run", "completed", "maria", RepoPermission.Write, Pr(), Label: "run-experiment",
            ChangedExperiments: ["smoke"], ApprovedHeadSha: Sha);

        RunGuard.Decide(handover).Should().BeEquivalentTo(new { Verdict = GuardVerdict.Run, Experiments = new[] { "smoke" }, HeadSha = Sha });
        RunGuard.Decide(handover with { Label = null }).Verdict.Should().Be(GuardVerdict.Ignore);
        RunGuard.Decide(handover with { ApprovedHeadSha = new string('e', 40) }).Reason.Should().Contain("approved commit eeeeeee");
        RunGuard.Decide(handover with { ActorPermission = RepoPermission.Triage }).Verdict.Should().Be(GuardVerdict.Refuse);
        RunGuard.Decide(handover with { PullRequest = Pr(fork: true) }).Verdict.Should().Be(GuardVerdict.Refuse);
    }

    [Fact]
    public void Two_experiment_files_with_one_name_are_refused()
    {
        var files = new ChangedFile[] { new("experiments/smoke.yaml", "added"), new("experiments/sub/smoke.yaml", "added"), new("experiments/other.yaml", "added") };

        RunGuard.DuplicateNames(files).Should().Equal("smoke");
        RunGuard.Decide(Comment("/run") with { DuplicateExperiments = RunGuard.DuplicateNames(files) }).Reason.Should().Contain("smoke: two changed experiment files have this name");
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
