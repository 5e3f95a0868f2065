using System.Text.Json.Nodes;
using Workflows.GitOps.Doctor;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Tests.Fakes;

namespace Workflows.GitOps.Tests;

/// <summary>
/// wf pr doctor's reading of the repository settings, against the local GitHub server answering with the shapes of
/// GitHub's REST docs (environments, deployment branch policies, secrets, rulesets, branch protection, workflow
/// permissions, variables).
/// </summary>
public sealed class RepositoryDoctorTests : IAsyncLifetime
{
    private const string Env = "/environments/experiment-runs";
    private FakeGitHub gh = null!;
    private RepositoryDoctor doctor = null!;

    public async Task InitializeAsync()
    {
        gh = await FakeGitHub.StartAsync();
        doctor = new RepositoryDoctor(new GitHubRepoClient(new GitHubSettings(new RepoRef("acme", "longctx"), gh.Token, gh.BaseUrl)));
    }

    public async Task DisposeAsync() => await gh.DisposeAsync();

    private static JsonObject Environment(JsonNode? branchPolicy, params JsonNode[] rules) => new()
    {
        ["id"] = 161088068,
        ["node_id"] = "MDExOkVudmlyb25tZW50MTYxMDg4MDY4",
        ["name"] = "experiment-runs",
        ["url"] = "https://api.github.com/repos/acme/longctx/environments/experiment-runs",
        ["html_url"] = "https://github.com/acme/longctx/deployments/activity_log?environments_filter=experiment-runs",
        ["created_at"] = "2024-02-01T10:00:00Z",
        ["updated_at"] = "2024-02-01T10:00:00Z",
        ["can_admins_bypass"] = true,
        ["protection_rules"] = new JsonArray(rules),
        ["deployment_branch_policy"] = branchPolicy,
    };

    private static JsonObject Reviewers(bool preventSelfReview) => new()
    {
        ["id"] = 3755,
        ["node_id"] = "MDQ6R2F0ZTM3NTU=",
        ["prevent_self_review"] = preventSelfReview,
        ["type"] = "required_reviewers",
        ["reviewers"] = new JsonArray(new JsonObject { ["type"] = "User", ["reviewer"] = new JsonObject { ["login"] = "maria", ["id"] = 1, ["type"] = "User" } }),
    };

    private static JsonObject Custom() => new() { ["protected_branches"] = false, ["custom_branch_policies"] = true };

    private static JsonObject Policies(params string[] names) => new()
    {
        ["total_count"] = names.Length,
        ["branch_policies"] = new JsonArray(names.Select((n, i) => (JsonNode)new JsonObject { ["id"] = 361471 + i, ["node_id"] = "MDE2OkdhdGVCcmFuY2hQb2xpY3kzNjE0NzE=", ["name"] = n, ["type"] = "branch" }).ToArray()),
    };

    private static JsonObject Secrets(params string[] names) => new()
    {
        ["total_count"] = names.Length,
        ["secrets"] = new JsonArray(names.Select(n => (JsonNode)new JsonObject { ["name"] = n, ["created_at"] = "2024-02-01T10:00:00Z", ["updated_at"] = "2024-02-01T10:00:00Z" }).ToArray()),
    };

    /// <summary>Everything as docs/gitops.md asks.</summary>
    private void Configure()
    {
        gh.Settings[Env] = Environment(Custom(), Reviewers(preventSelfReview: true), new JsonObject { ["id"] = 3756, ["node_id"] = "x", ["type"] = "branch_policy" });
        gh.Settings[Env + "/deployment-branch-policies"] = Policies("main");
        gh.Settings[Env + "/secrets"] = Secrets("WF_STORAGE_CONNECTION_STRING");
        gh.Settings["/actions/secrets"] = Secrets("SOMETHING_ELSE");
        gh.Settings["/rules/branches/main"] = new JsonArray(
            new JsonObject { ["type"] = "pull_request", ["ruleset_source_type"] = "Repository", ["ruleset_source"] = "acme/longctx", ["ruleset_id"] = 42,
                ["parameters"] = new JsonObject { ["required_approving_review_count"] = 1, ["dismiss_stale_reviews_on_push"] = true, ["require_code_owner_review"] = false,
                    ["require_last_push_approval"] = true, ["required_review_thread_resolution"] = false } },
            new JsonObject { ["type"] = "required_status_checks", ["ruleset_id"] = 42,
                ["parameters"] = new JsonObject { ["strict_required_status_checks_policy"] = false, ["required_status_checks"] = new JsonArray(new JsonObject { ["context"] = "archive-check" }, new JsonObject { ["context"] = "plan" }) } });
        gh.Settings["/actions/permissions/workflow"] = new JsonObject { ["default_workflow_permissions"] = "read", ["can_approve_pull_request_reviews"] = false };
        gh.Settings["/actions/variables/WF_ARCHIVE_INDEX_URL"] = new JsonObject { ["name"] = "WF_ARCHIVE_INDEX_URL", ["value"] = "https://example.blob.core.windows.net/wf-reports/archive/index.json" };
    }

    [Fact]
    public async Task A_repository_set_up_as_documented_passes_every_check()
    {
        Configure();

        var findings = await doctor.CheckAsync();

        findings.Where(f => f.Level != FindingLevel.Ok).Should().BeEmpty(string.Join("\n", findings));
        findings.Select(f => f.Setting).Should().Contain("environment 'experiment-runs' deployment branches")
            .And.Contain("branch 'main' reviews").And.Contain("repository secret WF_STORAGE_CONNECTION_STRING");
        gh.Requests.Select(r => r.ToString()).Should().Contain(
        [
            "GET /api/v3/repos/acme/longctx",
            "GET /api/v3/repos/acme/longctx/environments/experiment-runs",
            "GET /api/v3/repos/acme/longctx/environments/experiment-runs/deployment-branch-policies?per_page=100",
            "GET /api/v3/repos/acme/longctx/actions/secrets?per_page=100",
            "GET /api/v3/repos/acme/longctx/environments/experiment-runs/secrets?per_page=100",
            "GET /api/v3/repos/acme/longctx/rules/branches/main",
            "GET /api/v3/repos/acme/longctx/branches/main/protection",
            "GET /api/v3/repos/acme/longctx/actions/permissions/workflow",
        ]);
    }

    [Fact]
    public async Task An_environment_every_branch_may_use_is_the_failure_that_matters()
    {
        Configure();
        gh.Settings[Env] = Environment(null, Reviewers(preventSelfReview: true));

        var findings = await doctor.CheckAsync();

        var fail = findings.Should().ContainSingle(f => f.Level == FindingLevel.Fail).Which;
        fail.Setting.Should().Be("environment 'experiment-runs' deployment branches");
        fail.Message.Should().Contain("any branch may use it").And.Contain("pull_request runs its own workflow file");
        fail.Fix.Should().Contain("exactly 'main'");
        (await doctor.ReadEnvironmentAsync("experiment-runs"))!.OnlyDefaultBranch("main").Should().BeFalse();
    }

    [Theory]
    [InlineData("main,release/*", "allow more than 'main'")]
    [InlineData("*", "allow more than 'main'")]
    [InlineData("develop", "allow more than 'main' (or not it)")]
    public async Task Branch_patterns_other_than_exactly_the_default_branch_fail(string patterns, string message)
    {
        Configure();
        gh.Settings[Env + "/deployment-branch-policies"] = Policies(patterns.Split(','));

        var findings = await doctor.CheckAsync();

        findings.Should().ContainSingle(f => f.Level == FindingLevel.Fail).Which.Message.Should().Contain(message);
    }

    [Fact]
    public async Task Missing_environment_repository_level_secret_and_unreviewed_default_branch_are_each_named()
    {
        gh.Settings["/actions/secrets"] = Secrets("WF_STORAGE_CONNECTION_STRING");

        var findings = await doctor.CheckAsync();

        findings.Where(f => f.Level == FindingLevel.Fail).Select(f => f.Setting).Should().BeEquivalentTo(
            "environment 'experiment-runs'", "repository secret WF_STORAGE_CONNECTION_STRING", "environment secret WF_STORAGE_CONNECTION_STRING", "branch 'main' reviews");
        findings.Single(f => f.Setting == "repository secret WF_STORAGE_CONNECTION_STRING").Message.Should().Contain("every workflow run of a same-repository branch can read it");
        findings.Where(f => f.Level == FindingLevel.Warn).Select(f => f.Setting).Should().Contain("branch 'main' required checks").And.Contain("WF_ARCHIVE_INDEX_URL");
    }

    [Fact]
    public async Task Classic_branch_protection_counts_and_no_reviewers_is_a_warning()
    {
        Configure();
        gh.Settings.Remove("/rules/branches/main");
        gh.Settings["/branches/main/protection"] = new JsonObject
        {
            ["url"] = "https://api.github.com/repos/acme/longctx/branches/main/protection",
            ["required_status_checks"] = new JsonObject { ["strict"] = true, ["contexts"] = new JsonArray("archive-check"), ["checks"] = new JsonArray(new JsonObject { ["context"] = "archive-check", ["app_id"] = null }) },
            ["required_pull_request_reviews"] = new JsonObject { ["dismiss_stale_reviews"] = true, ["require_code_owner_reviews"] = false, ["required_approving_review_count"] = 2 },
        };
        gh.Settings[Env] = Environment(Custom());

        var findings = await doctor.CheckAsync();

        findings.Single(f => f.Setting == "branch 'main' reviews").Should().BeEquivalentTo(new { Level = FindingLevel.Ok, Message = "pull requests need 2 approving review(s) (branch protection)" });
        findings.Single(f => f.Setting == "environment 'experiment-runs' required reviewers").Level.Should().Be(FindingLevel.Warn);
        findings.Should().NotContain(f => f.Level == FindingLevel.Fail);
    }

    [Fact]
    public async Task Settings_the_token_may_not_read_are_reported_as_unknown_not_as_fine()
    {
        Configure();
        gh.Forbidden.Add("/actions/secrets");
        gh.Forbidden.Add("/actions/permissions/workflow");

        var findings = await doctor.CheckAsync();

        findings.Where(f => f.Level == FindingLevel.Unknown).Select(f => f.Setting).Should().BeEquivalentTo("secrets", "workflow token");
        findings.Single(f => f.Setting == "secrets").Fix.Should().Contain("admin");
    }
}
