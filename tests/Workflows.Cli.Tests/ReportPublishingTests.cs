using System.Net;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Steps;
using Workflows.GitOps.Archive;
using Workflows.GitOps.Publishing;
using Workflows.Artifacts.Store;
using Workflows.Artifacts.Runs;
using Workflows.GitOps.Runs;
using Workflows.GitOps.Tests.Fakes;

namespace Workflows.Cli.Tests;

/// <summary>Report images by URL from a real Azurite: public-blob and stored-policy SAS modes; the archive index's ETag concurrency.</summary>
public sealed class ReportPublishingTests
{
    private static readonly byte[] Png = [0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10, 1, 2, 3];

    [Fact]
    public async Task Public_container_serves_content_hashed_names_anonymously_and_republishing_is_a_no_op()
    {
        await using var storage = await TestStorage.StartAsync();
        var publisher = new ReportPublisher(storage.Connection, new ReportPublishingOptions { ContainerName = "pub-" + Guid.NewGuid().ToString("N")[..12] });
        var first = await publisher.PublishAsync(Png, ".png");
        var second = await publisher.PublishAsync(Png, ".png");

        first.Should().Be(second);
        first.BlobName.Should().MatchRegex("^reports/[0-9a-f]{64}\\.png$");
        using var http = new HttpClient();
        using var got = await http.GetAsync(first.Url);
        got.StatusCode.Should().Be(HttpStatusCode.OK);
        got.Content.Headers.ContentType!.MediaType.Should().Be("image/png");
        (await got.Content.ReadAsByteArrayAsync()).Should().Equal(Png);
        await publisher.Container.DeleteAsync();
    }

    [Fact]
    public async Task Sas_mode_keeps_the_container_private_and_urls_work_until_the_stored_policy_is_removed()
    {
        await using var storage = await TestStorage.StartAsync();
        var publisher = new ReportPublisher(storage.Connection, new ReportPublishingOptions
        {
            ContainerName = "sas-" + Guid.NewGuid().ToString("N")[..12], Access = ReportAccess.StoredPolicySas,
        });
        var published = await publisher.PublishAsync(Png, ".png");

        published.Url.Query.Should().Contain("si=wf-report-read");
        using var http = new HttpClient();
        (await http.GetAsync(published.Url)).StatusCode.Should().Be(HttpStatusCode.OK);
        var bare = new UriBuilder(published.Url) { Query = "" }.Uri;
        (await http.GetAsync(bare)).StatusCode.Should().NotBe(HttpStatusCode.OK, "the container is private");

        // Revoking the policy revokes every URL issued under it.
        await publisher.Container.SetAccessPolicyAsync(Azure.Storage.Blobs.Models.PublicAccessType.None, []);
        (await http.GetAsync(published.Url)).StatusCode.Should().NotBe(HttpStatusCode.OK);
        await publisher.Container.DeleteAsync();
    }

    [Fact]
    public async Task Archive_index_merges_concurrent_writers_and_refuses_a_changed_archived_experiment()
    {
        await using var storage = await TestStorage.StartAsync();
        var store = await BlobArtifactStore.OpenAsync(storage.Connection, "arch-" + Guid.NewGuid().ToString("N")[..12]);
        var index = new BlobArchiveIndex(store);
        await Task.WhenAll(Enumerable.Range(0, 6).Select(i =>
            index.RecordAsync([new ArchivedExperiment($"exp-{i % 3}", $"experiments/exp-{i % 3}.yaml", $"hash-{i % 3}", [$"run-{i}"])])));

        var all = await index.ListExperimentsAsync();
        all.Select(e => e.Name).Should().Equal("exp-0", "exp-1", "exp-2");
        all.Single(e => e.Name == "exp-0").Runs.Should().BeEquivalentTo(["run-0", "run-3"], "no writer's entry is lost");
        var changed = () => index.RecordAsync([new ArchivedExperiment("exp-0", "experiments/exp-0.yaml", "other-hash", [])]);
        (await changed.Should().ThrowAsync<InvalidOperationException>()).WithMessage("*immutable*copy it under a new name*");
        await store.Container.DeleteAsync();
    }

    [Fact]
    public void Shard_mismatches_name_the_shard_with_expected_and_got_hashes()
    {
        var published = new Manifest
        {
            Activity = "prepare-data", ActivityVersion = "1", KeyHash = "k", AttemptId = "a", Producer = "p", CreatedAt = DateTimeOffset.UnixEpoch,
            Entries = [new ManifestEntry("data/shard-00000.parquet", "b0", 10, "aaa"), new ManifestEntry("data/shard-00001.parquet", "b1", 10, "bbb")],
        };
        PrepareDataStep.ShardPart Part(int shard, string sha) => new(shard, $"shard-{shard:00000}.parquet", "x", 10, sha, 1, 1, 0, "plan");

        PrepareDataStep.ShardMismatches(published, [Part(0, "aaa"), Part(1, "bbb")]).Should().BeEmpty();
        PrepareDataStep.ShardMismatches(published, [Part(0, "aaa"), Part(1, "ccc")]).Should().Equal(
            "shard 1 (data/shard-00001.parquet): expected bbb, got ccc");
    }

    [Fact]
    public async Task The_run_finished_hook_reports_a_failed_pull_request_run_with_its_error_and_a_failure_status()
    {
        await using var storage = await TestStorage.StartAsync();
        await using var gh = await FakeGitHub.StartAsync();
        var store = await BlobArtifactStore.OpenAsync(storage.Connection, "hook-" + Guid.NewGuid().ToString("N")[..12]);
        const string sha = "5555555555555555555555555555555555555555";
        gh.AddPullRequest(21, "alice", sha, null, ("experiments/smoke.yaml", "added"));
        var runs = new RunRecordStore(store);
        var started = DateTimeOffset.Parse("2026-03-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        await runs.CreateAsync(new RunRecord
        {
            RunId = "pr21-smoke-abc", ExperimentName = "smoke", ExperimentHash = "h", CodeCommit = "c", SubmittedAt = started,
            StartedAt = started, CompletedAt = started.AddSeconds(42), Status = RunStatus.Failed,
            Error = "step 'prepare-data', shard 2: disk full",
            Steps = [new StepRecord { Step = "prepare-data", Status = "failed", StartedAt = started, CompletedAt = started.AddSeconds(40), Shard = "2", Error = "disk full" }],
            Origin = new RunOrigin { Repository = gh.FullName, PullRequest = 21, HeadSha = sha, Author = "alice", RequestedBy = "maria", TriggerId = "9" },
        }, "name: smoke\n");
        var hook = new GitHubRunFinishedHook(store, null, gh.Token, gh.BaseUrl);

        await hook.OnRunFinishedAsync((await runs.GetAsync("pr21-smoke-abc"))!.Record);
        await hook.OnRunFinishedAsync((await runs.GetAsync("pr21-smoke-abc"))!.Record);

        var body = gh.Comments.Should().ContainSingle().Which.Body;
        body.Should().Contain("run `pr21-smoke-abc` failed").And.Contain("disk full").And.Contain("prepare-data 40s");
        gh.Statuses.Select(s => (s.State, s.Context)).Should().Equal(("failure", "wf/experiment/smoke"), ("failure", "wf/experiment/smoke"));
        gh.Requests.Count(r => r.Method is "POST" or "PATCH" && r.Path.Contains("comments", StringComparison.Ordinal)).Should().Be(1, "the second report changes nothing");
        await store.Container.DeleteAsync();
    }
}
