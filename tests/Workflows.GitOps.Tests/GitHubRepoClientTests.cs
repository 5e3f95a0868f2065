using System.Text.Json.Nodes;
using Octokit;
using Workflows.GitOps.GitHub;
using Workflows.GitOps.Tests.Fakes;

namespace Workflows.GitOps.Tests;

/// <summary>The Octokit client against the local GitHub server: exact requests, and state after them.</summary>
public sealed class GitHubRepoClientTests : IAsyncLifetime
{
    private const string Api = "/api/v3/repos/acme/longctx";
    private static readonly string Sha = new('a', 40);
    private FakeGitHub gh = null!;
    private GitHubRepoClient client = null!;

    public async Task InitializeAsync()
    {
        gh = await FakeGitHub.StartAsync();
        client = new GitHubRepoClient(new GitHubSettings(new RepoRef("acme", "longctx"), gh.Token, gh.BaseUrl));
    }

    public async Task DisposeAsync() => await gh.DisposeAsync();

    private static string Body(string experiment, string text) => $"<!-- wf:experiment={experiment} -->\n{text}";

    private static void ShouldBeJson(string? actual, JsonNode expected) =>
        JsonNode.DeepEquals(JsonNode.Parse(actual!), expected).Should().BeTrue($"body {actual} should equal {expected.ToJsonString()}");

    [Fact]
    public async Task First_upsert_lists_comments_then_creates_one_with_the_marker_and_the_token()
    {
        var result = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "plan v1"));

        result.Action.Should().Be(StickyAction.Created);
        gh.Requests.Select(r => r.ToString()).Should().Equal(
            $"GET {Api}/issues/7/comments?sort=created&direction=asc&per_page=100",
            $"POST {Api}/issues/7/comments");
        ShouldBeJson(gh.Requests[1].Body, new JsonObject { ["body"] = Body("smoke", "plan v1") });
        gh.Requests.Should().OnlyContain(r => r.Authorization == "Token test-token");
        gh.Comments.Should().ContainSingle().Which.Body.Should().Be(Body("smoke", "plan v1"));
        result.CommentId.Should().Be(gh.Comments[0].Id);
        result.HtmlUrl.Should().EndWith($"#issuecomment-{gh.Comments[0].Id}");
    }

    [Fact]
    public async Task Rerunning_updates_the_same_comment_and_never_duplicates_it()
    {
        var first = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "plan v1"));
        gh.ClearRequests();

        string? seen = null;
        var second = await client.UpsertStickyCommentAsync(7, "smoke", existing => { seen = existing; return Body("smoke", "plan v2"); });

        seen.Should().Be(Body("smoke", "plan v1"), "the renderer gets the current body to keep other sections");
        second.Should().BeEquivalentTo(new { first.CommentId, Action = StickyAction.Updated });
        gh.Requests.Select(r => r.ToString()).Should().Equal(
            $"GET {Api}/issues/7/comments?sort=created&direction=asc&per_page=100",
            $"PATCH {Api}/issues/comments/{first.CommentId}");
        ShouldBeJson(gh.Requests[1].Body, new JsonObject { ["body"] = Body("smoke", "plan v2") });
        gh.Comments.Should().ContainSingle().Which.Body.Should().Be(Body("smoke", "plan v2"));
    }

    [Fact]
    public async Task An_identical_body_is_not_sent_again()
    {
        await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "same"));
        gh.ClearRequests();

        var again = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "same"));

        again.Action.Should().Be(StickyAction.Unchanged);
        gh.Requests.Should().ContainSingle().Which.Method.Should().Be("GET");
    }

    [Fact]
    public async Task With_two_marked_comments_the_oldest_is_updated_and_the_other_reported_untouched()
    {
        gh.AddComment(7, "alice", "LGTM");
        var oldest = gh.AddComment(7, "github-actions[bot]", Body("smoke", "old plan"));
        var dup = gh.AddComment(7, "github-actions[bot]", Body("smoke", "racing plan"));
        gh.AddComment(7, "github-actions[bot]", Body("smoke-2", "another experiment"));

        var result = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "new plan"));

        result.CommentId.Should().Be(oldest.Id);
        result.DuplicateIds.Should().Equal(dup.Id);
        oldest.Body.Should().Be(Body("smoke", "new plan"));
        dup.Body.Should().Be(Body("smoke", "racing plan"));
        gh.Comments.Should().HaveCount(4);
        gh.Requests.Where(r => r.Method != "GET").Select(r => r.ToString()).Should().Equal($"PATCH {Api}/issues/comments/{oldest.Id}");
    }

    [Fact]
    public async Task A_person_quoting_the_marker_is_not_mistaken_for_the_sticky_comment()
    {
        var quote = gh.AddComment(7, "alice", "> <!-- wf:experiment=smoke -->\n> old plan\nwhy so many GPUs?");

        var result = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "plan"));

        result.Action.Should().Be(StickyAction.Created);
        quote.Body.Should().StartWith("> ");
        gh.Comments.Should().HaveCount(2);
    }

    [Fact]
    public async Task With_a_bot_login_only_that_account_s_comments_count()
    {
        var impostor = gh.AddComment(7, "mallory", Body("smoke", "fake plan"));

        var result = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "plan"), botLogin: "github-actions[bot]");

        result.Action.Should().Be(StickyAction.Created);
        impostor.Body.Should().Be(Body("smoke", "fake plan"));
    }

    [Fact]
    public async Task Without_a_bot_login_a_person_s_marked_comment_is_never_taken_for_the_bot_s()
    {
        // A pull request's author posts a comment in the bot's format with a forged result section.
        var impostor = gh.AddComment(7, "mallory", Body("smoke", "## Run\nsucceeded, needle 100.0"));

        var result = await client.UpsertStickyCommentAsync(7, "smoke", existing => existing ?? Body("smoke", "plan"));

        result.Action.Should().Be(StickyAction.Created, "the bot writes its own comment");
        gh.Comments.Should().HaveCount(2);
        gh.Comments.Single(c => c.Id == result.CommentId).Body.Should().Be(Body("smoke", "plan"), "nothing of the impostor's comment is kept");
        impostor.Body.Should().Contain("needle 100.0", "and the impostor's comment is not edited");
    }

    [Fact]
    public async Task The_sticky_comment_is_found_on_a_later_page()
    {
        gh.MaxPerPage = 2;
        for (var i = 0; i < 4; i++)
        {
            gh.AddComment(7, "alice", $"comment {i}");
        }

        var sticky = gh.AddComment(7, "github-actions[bot]", Body("smoke", "plan"));

        var result = await client.UpsertStickyCommentAsync(7, "smoke", _ => Body("smoke", "plan v2"));

        result.CommentId.Should().Be(sticky.Id);
        gh.Requests.Select(r => r.ToString()).Should().Equal(
            $"GET {Api}/issues/7/comments?sort=created&direction=asc&per_page=100",
            $"GET {Api}/issues/7/comments?sort=created&direction=asc&per_page=100&page=2",
            $"GET {Api}/issues/7/comments?sort=created&direction=asc&per_page=100&page=3",
            $"PATCH {Api}/issues/comments/{sticky.Id}");
    }

    [Fact]
    public async Task A_body_without_the_experiment_s_marker_is_rejected_before_any_write()
    {
        var act = () => client.UpsertStickyCommentAsync(7, "smoke", _ => Body("other", "x"));

        await act.Should().ThrowAsync<ArgumentException>();
        gh.Requests.Should().OnlyContain(r => r.Method == "GET");
    }

    [Theory]
    [InlineData("admin", "admin", RepoPermission.Admin)]
    [InlineData("write", "maintain", RepoPermission.Maintain)]
    [InlineData("write", "write", RepoPermission.Write)]
    [InlineData("read", "triage", RepoPermission.Triage)]
    [InlineData("read", "read", RepoPermission.Read)]
    [InlineData("write", "ml-researcher", RepoPermission.Write)]
    [InlineData("none", "none", RepoPermission.None)]
    public async Task Permission_prefers_role_name_and_falls_back_to_permission_for_custom_roles(string permission, string role, RepoPermission expected)
    {
        gh.Collaborators["bob"] = (permission, role);

        (await client.GetPermissionAsync("bob")).Should().Be(expected);
        gh.Requests.Select(r => r.ToString()).Should().Equal($"GET {Api}/collaborators/bob/permission");
    }

    [Fact]
    public async Task A_user_the_permission_endpoint_does_not_know_has_no_permission()
    {
        (await client.GetPermissionAsync("stranger")).Should().Be(RepoPermission.None);
    }

    [Fact]
    public async Task Pull_request_details_say_fork_or_not_head_sha_labels_and_author()
    {
        var ours = gh.AddPullRequest(7, "alice", Sha);
        ours.Labels.Add("experiment");
        gh.AddPullRequest(8, "eve", new string('e', 40), headRepo: "eve/longctx");

        var pr = await client.GetPullRequestAsync(7);
        var fork = await client.GetPullRequestAsync(8);

        pr.Should().BeEquivalentTo(new
        {
            Number = 7, BaseRepoFullName = "acme/longctx", HeadRepoFullName = "acme/longctx", HeadSha = Sha, Author = "alice",
            IsOpen = true, IsFork = false, Labels = new[] { "experiment" },
        });
        fork.IsFork.Should().BeTrue();
        fork.HeadRepoFullName.Should().Be("eve/longctx");
        gh.Requests.Select(r => r.ToString()).Should().Equal($"GET {Api}/pulls/7", $"GET {Api}/pulls/8");
    }

    [Fact]
    public async Task Changed_files_come_with_status()
    {
        gh.AddPullRequest(7, "alice", Sha, null, ("experiments/a.yaml", "added"), ("experiments/b.yaml", "removed"));

        var files = await client.ListChangedFilesAsync(7);

        files.Should().Equal(new ChangedFile("experiments/a.yaml", "added"), new ChangedFile("experiments/b.yaml", "removed"));
        gh.Requests.Select(r => r.ToString()).Should().Equal($"GET {Api}/pulls/7/files?per_page=100");
    }

    [Fact]
    public async Task Labels_are_added_with_one_request_and_removed_idempotently()
    {
        gh.AddPullRequest(7, "alice", Sha);

        var after = await client.AddLabelsAsync(7, "run-experiment", "gpu");
        var removed = await client.RemoveLabelAsync(7, "run-experiment");
        var removedAgain = await client.RemoveLabelAsync(7, "run-experiment");

        after.Should().Equal("run-experiment", "gpu");
        (removed, removedAgain).Should().Be((true, false));
        gh.PullRequests[7].Labels.Should().Equal("gpu");
        gh.Requests.Select(r => r.ToString()).Should().Equal(
            $"POST {Api}/issues/7/labels",
            $"DELETE {Api}/issues/7/labels/run-experiment",
            $"DELETE {Api}/issues/7/labels/run-experiment");
        ShouldBeJson(gh.Requests[0].Body, new JsonArray("run-experiment", "gpu"));
    }

    [Theory]
    [InlineData(CommitStatusState.Pending, "pending")]
    [InlineData(CommitStatusState.Success, "success")]
    [InlineData(CommitStatusState.Failure, "failure")]
    [InlineData(CommitStatusState.Error, "error")]
    public async Task Commit_status_is_posted_on_the_sha_with_the_experiment_context(CommitStatusState state, string wire)
    {
        await client.SetCommitStatusAsync(Sha, "smoke", state, "run r-1", new Uri("https://runs.example.com/r-1"));

        gh.Requests.Select(r => r.ToString()).Should().Equal($"POST {Api}/statuses/{Sha}");
        ShouldBeJson(gh.Requests[0].Body, new JsonObject
        {
            ["state"] = wire, ["target_url"] = "https://runs.example.com/r-1", ["description"] = "run r-1", ["context"] = "wf/experiment/smoke",
        });
        gh.Statuses.Should().ContainSingle().Which.Should().BeEquivalentTo(new { Sha, State = wire, Context = "wf/experiment/smoke" });
    }

    [Fact]
    public async Task Long_status_descriptions_are_cut_to_GitHub_s_140_characters()
    {
        await client.SetCommitStatusAsync(Sha, "smoke", CommitStatusState.Failure, new string('x', 300));

        gh.Statuses.Single().Description.Should().HaveLength(140);
        gh.Requests[0].Json!.AsObject().ContainsKey("target_url").Should().BeFalse("a missing URL is left out, not sent as null");
    }

    [Fact]
    public async Task A_wrong_token_fails_with_GitHub_s_401()
    {
        var wrong = new GitHubRepoClient(new GitHubSettings(new RepoRef("acme", "longctx"), "nope", gh.BaseUrl));

        var act = () => wrong.ListCommentsAsync(7);

        await act.Should().ThrowAsync<AuthorizationException>();
    }

    [Fact]
    public void Settings_come_from_the_Actions_environment_with_an_override_for_the_API_URL()
    {
        var env = new Dictionary<string, string?>
        {
            ["GITHUB_TOKEN"] = "t0k",
            ["GITHUB_REPOSITORY"] = "acme/longctx",
            ["GITHUB_API_URL"] = "https://ghe.example.com/api/v3",
        };

        var s = GitHubSettings.FromEnvironment(env: k => env.GetValueOrDefault(k));
        env["WF_GITHUB_API_URL"] = "http://127.0.0.1:5000/";
        var overridden = GitHubSettings.FromEnvironment(repository: "other/repo", env: k => env.GetValueOrDefault(k));
        env["GITHUB_TOKEN"] = "";
        var noToken = () => GitHubSettings.FromEnvironment(env: k => env.GetValueOrDefault(k));

        s.Should().Be(new GitHubSettings(new RepoRef("acme", "longctx"), "t0k", new Uri("https://ghe.example.com/api/v3")));
        overridden.Should().Be(new GitHubSettings(new RepoRef("other", "repo"), "t0k", new Uri("http://127.0.0.1:5000/")));
        noToken.Should().Throw<InvalidOperationException>().WithMessage("*GITHUB_TOKEN*");
    }
}
