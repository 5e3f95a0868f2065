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

    /// <summary>Runs <paramref name="action"/> with the variables set, then puts the previous values back.</summary>
    private static T WithEnvironment<T>(IReadOnlyDictionary<string, string?> variables, Func<T> action)
    {
        var previous = variables.Keys.ToDictionary(k => k, Environment.GetEnvironmentVariable);
        foreach (var (k, v) in variables)
        {
            Environment.SetEnvironmentVariable(k, v);
        }

        try
        {
            return action();
        }
        finally
        {
            foreach (var (k, v) in previous)
            {
                Environment.SetEnvironmentVariable(k, v);
            }
        }
    }

    private static string EventFile(string defaultBranch)
    {
        var file = Path.GetTempFileName();
        File.WriteAllText(file, $$$"""{"action":"labeled","repository":{"full_name":"acme/longctx","default_branch":"{{{defaultBranch}}}"}}""");
        return file;
    }

    private string[] Submit(string eventName, string action, params string[] more) =>
    [
        "pr", "submit", "--repo", gh.FullName, "--event", eventName, "--action", action, "--actor", "mallory", "--pr", "5",
        "--label", "run-experiment", "--trigger-id", "1", "--experiments-dir", "pr-head/experiments", .. more,
    ];

    [Theory]
    [InlineData("refs/pull/5/merge", "pull_request", "labeled")]
    [InlineData("refs/heads/feature", "workflow_dispatch", "")]
    public void Submit_run_from_a_non_default_ref_refuses_before_it_touches_github_or_storage(string gitRef, string eventName, string action)
    {
        var eventFile = EventFile("main");
        try
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var result = WithEnvironment(new Dictionary<string, string?>
            {
                ["GITHUB_ACTIONS"] = "true",
                ["GITHUB_REF"] = gitRef,
                ["GITHUB_EVENT_PATH"] = eventFile,
                // Were it used, this would fail differently (and slowly): the refusal must come first.
                ["WF_STORAGE_CONNECTION_STRING"] = "DefaultEndpointsProtocol=http;AccountName=nobody;AccountKey=bm9ib2R5;BlobEndpoint=http://127.0.0.1:9/nobody;",
            }, () => Wf(Submit(eventName, action)));

            result.Exit.Should().Be(ExitCodes.InvalidInput, result.Out + result.Err);
            result.Err.Should().Contain($"this job runs from '{gitRef}', not the default branch 'main'")
                .And.Contain("run only the default branch's code and workflows");
            gh.Requests.Should().BeEmpty("nothing is asked of GitHub either");
            watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        }
        finally
        {
            File.Delete(eventFile);
        }
    }

    [Fact]
    public void Submit_refuses_an_environment_other_branches_may_use_and_one_it_cannot_read()
    {
        var eventFile = EventFile("main");
        try
        {
            var env = new Dictionary<string, string?> { ["GITHUB_ACTIONS"] = "true", ["GITHUB_REF"] = "refs/heads/main", ["GITHUB_EVENT_PATH"] = eventFile };
            gh.Settings["/environments/experiment-runs"] = new System.Text.Json.Nodes.JsonObject
            {
                ["id"] = 1, ["name"] = "experiment-runs", ["protection_rules"] = new System.Text.Json.Nodes.JsonArray(), ["deployment_branch_policy"] = null,
            };
            var open = WithEnvironment(env, () => Wf(Submit("issue_comment", "created", "--environment", "experiment-runs")));
            gh.Forbidden.Add("/environments/experiment-runs");
            var unreadable = WithEnvironment(env, () => Wf(Submit("issue_comment", "created", "--environment", "experiment-runs")));

            open.Exit.Should().Be(ExitCodes.InvalidInput);
            open.Err.Should().Contain("environment 'experiment-runs' may be used from other branches than 'main' (AnyBranch)");
            unreadable.Exit.Should().Be(ExitCodes.InvalidInput);
            unreadable.Err.Should().Contain("permissions: actions: read");
            gh.Requests.Select(r => r.ToString()).Distinct().Should().BeEquivalentTo(
                $"GET /api/v3/repos/{gh.FullName}", $"GET /api/v3/repos/{gh.FullName}/environments/experiment-runs");
        }
        finally
        {
            File.Delete(eventFile);
        }
    }

    [Fact]
    public void Doctor_exits_1_and_names_each_missing_setting()
    {
        var result = Wf("pr", "doctor", "--repo", gh.FullName);

        result.Exit.Should().Be(ExitCodes.InvalidInput, result.Err);
        result.Out.Should().Contain("fail    environment 'experiment-runs': does not exist")
            .And.Contain("fail    environment secret WF_STORAGE_CONNECTION_STRING")
            .And.Contain("fail    branch 'main' reviews")
            .And.MatchRegex(@"acme/longctx: \d+ ok, \d+ warning\(s\), 3 missing, 1 not readable");
    }

    [Fact]
    public void Check_archive_reads_the_name_of_every_changed_file_from_the_head()
    {
        gh.AddPullRequest(10, "alice", "abc123", null, ("experiments/sub/per-source-5b-80k.yaml", "added"));
        var index = Path.GetTempFileName();
        var head = Directory.CreateTempSubdirectory("wf-head-").FullName;
        File.WriteAllText(index, """{"experiments":[{"name":"per-source-5b-80k","path":"experiments/per-source-5b-80k.yaml","content_hash":"d27b","runs":["run-1"]}]}""");
        Directory.CreateDirectory(Path.Combine(head, "experiments", "sub"));
        File.WriteAllText(Path.Combine(head, "experiments", "sub", "per-source-5b-80k.yaml"), "name: per-source-5b-80k\nmodel: { base: tiny }\n");
        try
        {
            var withoutHead = Wf("pr", "check-archive", "--repo", gh.FullName, "--pr", "10", "--index-url", index);
            var withHead = Wf("pr", "check-archive", "--repo", gh.FullName, "--pr", "10", "--index-url", index, "--head-dir", head);

            withoutHead.Exit.Should().Be(ExitCodes.Ok, "by path alone the nested file is new");
            withHead.Exit.Should().Be(ExitCodes.InvalidInput, withHead.Out + withHead.Err);
            withHead.Out.Should().Contain("experiments/sub/per-source-5b-80k.yaml: name 'per-source-5b-80k' belongs to the archived experiment");
        }
        finally
        {
            File.Delete(index);
            Directory.Delete(head, recursive: true);
        }
    }

    [Fact]
    public void Guard_refuses_a_head_pushed_after_the_run_comment()
    {
        gh.AddPullRequest(11, "alice", new string('a', 40), null, ("experiments/smoke.yaml", "added"));
        gh.Collaborators["maria"] = ("write", "write");
        var commented = gh.Tick();
        gh.Push(11, new string('b', 40));
        var output = Path.GetTempFileName();
        try
        {
            var result = WithEnvironment(new Dictionary<string, string?> { ["WF_TEST_COMMENT"] = "/run" }, () => Wf(
                "pr", "guard", "--repo", gh.FullName, "--event", "issue_comment", "--action", "created", "--actor", "maria", "--pr", "11",
                "--comment-env", "WF_TEST_COMMENT", "--requested-at", commented.ToString("O", System.Globalization.CultureInfo.InvariantCulture), "--github-output", output));

            result.Exit.Should().Be(ExitCodes.Ok, result.Err);
            result.Out.Should().StartWith("Refuse: the branch of pull request #11 was pushed at").And.Contain("/run @bbbbbbb");
            File.ReadAllText(output).Should().Contain("verdict=refuse");
        }
        finally
        {
            File.Delete(output);
        }
    }
}

[CollectionDefinition(nameof(EnvironmentVariables), DisableParallelization = true)]
public sealed class EnvironmentVariables;
