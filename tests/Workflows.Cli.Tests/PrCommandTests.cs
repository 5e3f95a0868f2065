using Workflows.Cli.Commands;
using Workflows.GitOps.Tests.Fakes;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>wf pr against a local server that answers with GitHub's documented REST shapes.</summary>
[Collection(nameof(EnvironmentVariables))]
public sealed class PrCommandTests : IAsyncLifetime
{
    private FakeGitHub gh = null!;

    public async Task InitializeAsync()
    {
        gh = await FakeGitHub.StartAsync();
        Environment.SetEnvironmentVariable("GITHUB_TOKEN", gh.Token);
        Environment.SetEnvironmentVariable("WF_GITHUB_API_URL", gh.BaseUrl.ToString());
    }

    public async Task DisposeAsync()
    {
        Environment.SetEnvironmentVariable("GITHUB_TOKEN", null);
        Environment.SetEnvironmentVariable("WF_GITHUB_API_URL", null);
        await gh.DisposeAsync();
    }

    [Fact]
    public void Comment_plan_posts_one_sticky_comment_and_updates_it_on_rerun()
    {
        gh.AddPullRequest(7, "alice", "abc123", null, ("experiments/smoke.yaml", "added"));
        var smoke = Path.Combine(Root, "experiments", "smoke.yaml");

        var first = Wf("pr", "comment-plan", "--repo", gh.FullName, "--pr", "7", "--sha", "abc123", smoke);
        var second = Wf("pr", "comment-plan", "--repo", gh.FullName, "--pr", "7", "--sha", "def456", smoke);

        first.Exit.Should().Be(ExitCodes.Ok, first.Err);
        second.Exit.Should().Be(ExitCodes.Ok, second.Err);
        var comment = gh.Comments.Should().ContainSingle().Which;
        comment.Body.Should().Contain("<!-- wf:experiment=smoke -->").And.Contain("Tokens per source").And.Contain("def456");
        gh.Requests.Count(r => r.Method == "POST" && r.Path.EndsWith("/issues/7/comments", StringComparison.Ordinal)).Should().Be(1);
        gh.Requests.Count(r => r.Method == "PATCH").Should().Be(1);
    }

    [Fact]
    public void Guard_refuses_a_run_from_a_fork_and_writes_the_verdict_for_the_workflow()
    {
        gh.AddPullRequest(8, "mallory", "abc123", "mallory/longctx", ("experiments/smoke.yaml", "added"));
        var output = Path.GetTempFileName();
        Environment.SetEnvironmentVariable("WF_TEST_COMMENT", "/run");
        try
        {
            var result = Wf("pr", "guard", "--repo", gh.FullName, "--event", "issue_comment", "--action", "created", "--actor", "mallory",
                "--pr", "8", "--comment-env", "WF_TEST_COMMENT", "--github-output", output);

            result.Exit.Should().Be(ExitCodes.Ok, result.Err);
            result.Out.Should().StartWith("Refuse");
            File.ReadAllText(output).Should().Contain("verdict=refuse");
            gh.Requests.Should().NotContain(r => r.Path.Contains("/permission", StringComparison.Ordinal), "forks are refused before any permission lookup");
        }
        finally
        {
            Environment.SetEnvironmentVariable("WF_TEST_COMMENT", null);
            File.Delete(output);
        }
    }

    [Fact]
    public void Check_archive_fails_a_pr_that_edits_an_archived_experiment()
    {
        gh.AddPullRequest(9, "alice", "abc123", null, ("experiments/per-source-5b-80k.yaml", "modified"));
        var index = Path.GetTempFileName();
        File.WriteAllText(index, """{"experiments":[{"name":"per-source-5b-80k","path":"experiments/per-source-5b-80k.yaml","content_hash":"d27b","runs":[]}]}""");
        try
        {
            var result = Wf("pr", "check-archive", "--repo", gh.FullName, "--pr", "9", "--index-url", index);

            result.Exit.Should().Be(ExitCodes.InvalidInput, result.Out + result.Err);
            result.Out.Should().Contain("copy it under a new name");
        }
        finally
        {
            File.Delete(index);
        }
    }
}

[CollectionDefinition(nameof(EnvironmentVariables), DisableParallelization = true)]
public sealed class EnvironmentVariables;
