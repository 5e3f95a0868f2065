using System.Diagnostics;
using System.Text.RegularExpressions;
using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Runs;
using Workflows.Cli.Commands;
using Workflows.GitOps.Tests.Fakes;
using Xunit.Abstractions;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// The GitOps story end to end (issue 7's "done when"): a real Azurite, a real in-process engine worker and GPU agent
/// with the GitHub results hook, the local GitHub server, and the wf commands the workflows call, in order.
/// </summary>
[Collection(nameof(EnvironmentVariables))]
public sealed partial class GitOpsStoryTests(ITestOutputHelper log)
{
    private const string Api = "/api/v3/repos/acme/longctx";
    private const string HeadSha = "1111111111111111111111111111111111111111";

    [Fact]
    public async Task Pull_request_plan_run_results_fork_refusal_archive_and_exact_rerun()
    {
        var clock = Stopwatch.StartNew();
        await using var storage = await TestStorage.StartAsync();
        await using var gh = await FakeGitHub.StartAsync();
        var engine = await StoryEngine.StartAsync(storage, gh, "story", jobPoll: TimeSpan.FromSeconds(2), agentPoll: TimeSpan.FromMilliseconds(500),
            new Dictionary<string, string?> { ["WF_STORY_COMMENT"] = null });
        var host = engine.Host;
        var experiments = StoryEngine.Experiments;
        var smoke = Path.Combine(experiments, "smoke.yaml");
        try
        {
            // 1. PR #12 adds experiments/smoke.yaml: the plan job posts the sticky comment.
            gh.AddPullRequest(12, "alice", HeadSha, null, ("experiments/smoke.yaml", "added"));
            gh.Collaborators["maria"] = ("write", "maintain");
            var plan = Wf("pr", "comment-plan", "--repo", gh.FullName, "--pr", "12", "--sha", HeadSha, smoke);
            plan.Exit.Should().Be(ExitCodes.Ok, plan.Err);
            var comment = gh.Comments.Should().ContainSingle().Which;
            comment.Body.Should().StartWith("<!-- wf:experiment=smoke -->").And.Contain("Tokens per source");

            // 2. A maintainer comments /run: guard + submit; returns at once with a pending status.
            gh.ClearRequests();
            Environment.SetEnvironmentVariable("WF_STORY_COMMENT", "/run");
            string[] submitArgs = ["pr", "submit", "--repo", gh.FullName, "--event", "issue_comment", "--action", "created", "--actor", "maria", "--pr", "12",
                "--comment-env", "WF_STORY_COMMENT", "--expect-sha", HeadSha, "--trigger-id", "555", "--experiments-dir", experiments,
                "--workflows-dir", Path.Combine(Root, "workflows")];
            var submitWatch = Stopwatch.StartNew();
            var submit = Wf(submitArgs);
            submitWatch.Stop();
            submit.Exit.Should().Be(ExitCodes.Ok, submit.Out + submit.Err);
            var runId = RunIdIn().Match(submit.Out).Groups[1].Value;
            runId.Should().StartWith("pr12-smoke-");
            gh.Requests.Select(r => r.ToString()).Should().Equal(
                $"GET {Api}/pulls/12",
                $"GET {Api}/pulls/12/files?per_page=100",
                $"GET {Api}/collaborators/maria/permission",
                $"GET {Api}/issues/12/comments?sort=created&direction=asc&per_page=100",
                $"PATCH {Api}/issues/comments/{comment.Id}",
                $"POST {Api}/statuses/{HeadSha}");
            gh.Requests[^1].Json!["state"]!.GetValue<string>().Should().Be("pending");
            var record = (await host.Client.Runs.GetAsync(runId))!.Record;
            record.Origin.Should().BeEquivalentTo(new RunOrigin
            {
                Repository = "acme/longctx", PullRequest = 12, HeadSha = HeadSha, Author = "alice", RequestedBy = "maria", TriggerId = "555",
            });

            // A redelivered trigger returns the same run and starts nothing new.
            var again = Wf(submitArgs);
            again.Exit.Should().Be(ExitCodes.Ok, again.Err);
            RunIdIn().Match(again.Out).Groups[1].Value.Should().Be(runId);
            (await host.Client.ListAsync()).Should().ContainSingle(r => r.ExperimentName == "smoke");

            // 3. The run completes; the engine's run-finished hook puts the results on the PR.
            gh.ClearRequests();
            // 1-2 min on a quiet 2-core box; a box shared with other builds (load average 20-40) trains 5-10x slower.
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8)))
            {
                var view = await engine.WaitAsync(runId, timeout.Token, "8 min");
                view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
            }

            // wf status RUN: the steps, and each GPU job with the agent that ran it and why that claim ended.
            var status = Wf("status", runId);
            status.Exit.Should().Be(ExitCodes.Ok, status.Err);
            status.Out.Should().Contain("GPU jobs").And.Contain($"{runId}.train.1").And.Contain($"{runId}.evaluate-needle.1")
                .And.Contain("succeeded").And.NotContain($"{runId}.report.1", "report needs no GPU: it runs on a worker");

            var runSeconds = clock.Elapsed.TotalSeconds;
            gh.Requests.Select(r => r.ToString()).Should().Equal(
                $"GET {Api}/issues/12/comments?sort=created&direction=asc&per_page=100",
                $"PATCH {Api}/issues/comments/{comment.Id}",
                $"POST {Api}/statuses/{HeadSha}");
            gh.Requests[^1].Json!["state"]!.GetValue<string>().Should().Be("success");
            gh.Statuses.Select(s => s.State).Should().Equal("pending", "pending", "success");
            var body = gh.Comments.Single().Body;
            body.Should().Contain($"run `{runId}` succeeded").And.Contain("mean needle score").And.Contain("| context length | mean |")
                .And.Contain("Loss by domain and length").And.Contain("| 0-512 | Book |", "the smoke experiment's held-out books")
                .And.Contain("Tokens per source", "the plan section is kept");
            var heatmapUrl = new Uri(HeatmapIn().Match(body).Groups[1].Value);
            heatmapUrl.AbsolutePath.Should().MatchRegex($"/{engine.Environment["WF_REPORTS_CONTAINER"]}/reports/[0-9a-f]{{64}}\\.png$");
            using var http = new HttpClient();
            using var fetched = await http.GetAsync(heatmapUrl);
            fetched.StatusCode.Should().Be(System.Net.HttpStatusCode.OK, "GitHub fetches the image anonymously by URL");
            fetched.Content.Headers.ContentType!.MediaType.Should().Be("image/png");
            var png = await fetched.Content.ReadAsByteArrayAsync();
            png[..4].Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G');
            WriteDocs(body, png);

            // `wf report` by hand: same comment (not edited again), same status re-sent.
            gh.ClearRequests();
            var report = Wf("report", "--run", runId, "--pr", "12");
            report.Exit.Should().Be(ExitCodes.Ok, report.Err);
            gh.Requests.Select(r => r.ToString()).Should().Equal(
                $"GET {Api}/issues/12/comments?sort=created&direction=asc&per_page=100",
                $"POST {Api}/statuses/{HeadSha}");
            gh.Comments.Single().Body.Should().Be(body);

            // 4. A fork's /run is refused before any permission lookup; nothing is submitted or written.
            gh.AddPullRequest(13, "mallory", "2222222222222222222222222222222222222222", "mallory/longctx", ("experiments/smoke.yaml", "added"));
            gh.ClearRequests();
            var fork = Wf("pr", "submit", "--repo", gh.FullName, "--event", "issue_comment", "--action", "created", "--actor", "mallory", "--pr", "13",
                "--comment-env", "WF_STORY_COMMENT", "--trigger-id", "556", "--experiments-dir", experiments, "--workflows-dir", Path.Combine(Root, "workflows"));
            fork.Exit.Should().Be(ExitCodes.InvalidInput);
            fork.Out.Should().StartWith("Refuse").And.Contain("fork");
            gh.Requests.Select(r => r.ToString()).Should().Equal($"GET {Api}/pulls/13", $"GET {Api}/pulls/13/files?per_page=100");
            (await host.Client.ListAsync()).Should().ContainSingle();

            // 5. Merge to main archives it; a later PR editing the archived file fails the check.
            var archive = Wf("archive", "--commit", "3333333333333333333333333333333333333333", smoke);
            archive.Exit.Should().Be(ExitCodes.Ok, archive.Err);
            archive.Out.Should().Contain($"archived smoke (experiments/smoke.yaml,").And.Contain(runId);
            var indexUrl = IndexUrlIn().Match(archive.Out).Groups[1].Value;
            gh.AddPullRequest(14, "alice", "4444444444444444444444444444444444444444", null, ("experiments/smoke.yaml", "modified"));
            var check = Wf("pr", "check-archive", "--repo", gh.FullName, "--pr", "14", "--index-url", indexUrl);
            check.Exit.Should().Be(ExitCodes.InvalidInput, check.Out + check.Err);
            check.Out.Should().Contain("experiments/smoke.yaml is archived").And.Contain("copy it under a new name");
            var list = Wf("list");
            list.Out.Should().Contain("smoke").And.Contain(runId).And.Contain("Succeeded");
            var show = Wf("show", "smoke");
            show.Out.Should().Contain(runId).And.Contain("acme/longctx#12");

            // 6. An exact rerun, forced to recompute every step: data prep reproduces the archived shard hashes.
            var rerun = Wf("rerun", runId, "--force", "--wait", "--workflows-dir", Path.Combine(Root, "workflows"));
            log.WriteLine(rerun.Out + rerun.Err);
            rerun.Exit.Should().Be(ExitCodes.Ok, rerun.Out + rerun.Err);
            rerun.Out.Should().Contain("inputs verified: 1 file(s)").And.Contain("recomputing from step 'prepare-data'")
                .And.Contain("Data prep reproduced bit for bit: 4 shard(s)");
            var rerunRecord = (await host.Client.ListAsync()).Single(r => r.RerunOf == runId);
            rerunRecord.Steps.Should().OnlyContain(s => !s.Cached, "--force recomputes every step");

            // 7. Another /run, cancelled at once: the terminated orchestration never reaches its own run-finished step,
            //    so `wf cancel` puts the cancellation on the PR itself (comment + error status).
            //    The worker is stopped first: every step of this run is cached, so with a worker it could finish before the
            //    cancel lands; without one it stays queued and the test is deterministic.
            await host.StopAsync(TimeSpan.FromSeconds(10));
            string[] secondArgs = [.. submitArgs.Select(a => a == "555" ? "557" : a)];
            var second = Wf(secondArgs);
            second.Exit.Should().Be(ExitCodes.Ok, second.Out + second.Err);
            var cancelledId = RunIdIn().Match(second.Out).Groups[1].Value;
            cancelledId.Should().NotBe(runId);
            gh.ClearRequests();
            var cancel = Wf("cancel", cancelledId, "--reason", "story test");
            cancel.Exit.Should().Be(ExitCodes.Ok, cancel.Out + cancel.Err);
            cancel.Out.Should().Contain("reported on acme/longctx#12");
            (await host.Client.Runs.GetAsync(cancelledId))!.Record.Status.Should().Be(RunStatus.Cancelled);
            gh.Requests[^1].ToString().Should().Be($"POST {Api}/statuses/{HeadSha}");
            gh.Requests[^1].Json!["state"]!.GetValue<string>().Should().Be("error");
            gh.Comments.Single().Body.Should().Contain($"`{cancelledId}`").And.Contain("cancelled");
            log.WriteLine($"submit returned in {submitWatch.Elapsed.TotalSeconds:0.0}s; first run done at {runSeconds:0.0}s; whole story {clock.Elapsed.TotalSeconds:0.0}s");
        }
        finally
        {
            await engine.DisposeAsync();
        }
    }

    /// <summary>WF_WRITE_STORY_DOCS=DIR writes the rendered comment and heatmap there (docs/gitops-example-comment.md, docs/img/).</summary>
    private static void WriteDocs(string body, byte[] png)
    {
        if (Environment.GetEnvironmentVariable("WF_WRITE_STORY_DOCS") is not { Length: > 0 } dir)
        {
            return;
        }

        Directory.CreateDirectory(Path.Combine(dir, "img"));
        File.WriteAllBytes(Path.Combine(dir, "img", "gitops-example-heatmap.png"), png);
        File.WriteAllText(Path.Combine(dir, "gitops-example-comment.raw.md"), body);
    }

    [GeneratedRegex(@"run (\S+) submitted")]
    private static partial Regex RunIdIn();

    [GeneratedRegex(@"!\[[^\]]*\]\((https?://[^)\s]+)\)")]
    private static partial Regex HeatmapIn();

    [GeneratedRegex(@"public copy: (\S+)")]
    private static partial Regex IndexUrlIn();
}

/// <summary>WF_TEST_AZURITE_CONNECTION_STRING, or an Azurite started here from infra/azurite (as the engine tests do).</summary>
internal sealed class TestStorage : IAsyncDisposable
{
    private AzuriteProcess? _azurite;
    private string? _data;

    public StorageConnection Connection { get; private set; } = null!;

    public static async Task<TestStorage> StartAsync()
    {
        var s = new TestStorage();
        if (Environment.GetEnvironmentVariable("WF_TEST_AZURITE_CONNECTION_STRING") is { Length: > 0 } external)
        {
            s.Connection = StorageConnection.FromConnectionString(external);
            return s;
        }

        s._data = Path.Combine(Path.GetTempPath(), "wf-cli-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        s._azurite = await AzuriteProcess.StartAsync(new AzuriteOptions
        {
            DataDirectory = s._data,
            Installation = AzuriteInstallation.Locate(AppContext.BaseDirectory),
            InstallIfMissing = true,
            ReadyTimeout = TimeSpan.FromSeconds(90),
        });
        s.Connection = s._azurite.Connection;
        return s;
    }

    public async ValueTask DisposeAsync()
    {
        if (_azurite is not null)
        {
            await _azurite.DisposeAsync();
        }

        if (_data is not null && Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }
}
