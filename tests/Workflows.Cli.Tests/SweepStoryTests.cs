using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Cli.Commands;
using Workflows.Engine.Jobs;
using Workflows.Experiments.Templates;
using Workflows.GitOps.Runs;
using Workflows.GitOps.Tests.Fakes;
using Xunit.Abstractions;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// A sweep end to end (issue 17): experiments/smoke-sweep.yaml on a pull request, on a real Azurite with a real
/// in-process engine worker and GPU agent and the local GitHub server. One plan comment for the three variants; /run
/// submits them under one sweep id; the sweep's one comment is updated as variants finish and ends with their
/// comparison; the variants measured the shared input once (cache records); the comparison's numbers equal the
/// variants' own reports; wf status/compare/run take the sweep; a sweep with a failing variant still runs the rest.
/// </summary>
[Collection(nameof(EnvironmentVariables))]
public sealed partial class SweepStoryTests(ITestOutputHelper log)
{
    private const string HeadSha = "5555555555555555555555555555555555555555";

    [Fact]
    public async Task A_sweep_pull_request_plans_runs_shares_the_measure_pass_and_compares_its_variants_in_one_comment()
    {
        var clock = Stopwatch.StartNew();
        await using var storage = await TestStorage.StartAsync();
        await using var gh = await FakeGitHub.StartAsync();
        var engine = await StoryEngine.StartAsync(storage, gh, "sweep", jobPoll: TimeSpan.FromSeconds(1), agentPoll: TimeSpan.FromMilliseconds(250),
            new Dictionary<string, string?> { ["WF_SWEEP_COMMENT"] = "/run" });
        var host = engine.Host;
        var experiments = StoryEngine.Experiments;
        var sweepFile = Path.Combine(experiments, "smoke-sweep.yaml");
        var scratch = Path.Combine(Path.GetTempPath(), "wf-sweep-files-" + Guid.NewGuid().ToString("N")[..10]);
        try
        {
            // 1. PR #21 adds the sweep file: one plan comment with the three variants and what they share.
            gh.AddPullRequest(21, "alice", HeadSha, null, ("experiments/smoke-sweep.yaml", "added"));
            gh.Collaborators["maria"] = ("write", "maintain");
            var plan = Wf("pr", "comment-plan", "--repo", gh.FullName, "--pr", "21", "--sha", HeadSha, sweepFile);
            plan.Exit.Should().Be(ExitCodes.Ok, plan.Err);
            var comment = gh.Comments.Should().ContainSingle("one comment for the whole sweep").Which;
            comment.Body.Should().StartWith("<!-- wf:experiment=smoke-sweep -->")
                .And.Contain("### Sweep `smoke-sweep`: plan of 3 variants")
                .And.Contain("| 1 | smoke-sweep-none-lr-low | none | lr-low |")
                .And.Contain("| 3 | smoke-sweep-per-source-lr-high | per-source | lr-high |")
                .And.Contain("| prepare-data (measure pass) | 1 for 3 variants | all 3 |")
                .And.Contain("| prepare-data | 2 for 3 variants | smoke-sweep-per-source-lr-low, smoke-sweep-per-source-lr-high |")
                .And.Contain("<details><summary>Plan of smoke-sweep-per-source-lr-high</summary>")
                .And.Contain("`/run smoke-sweep`");

            // 2. /run submits every variant under one sweep id; the comment says so and the status is pending.
            gh.ClearRequests();
            var submit = Wf("pr", "submit", "--repo", gh.FullName, "--event", "issue_comment", "--action", "created", "--actor", "maria", "--pr", "21",
                "--comment-env", "WF_SWEEP_COMMENT", "--expect-sha", HeadSha, "--trigger-id", "777", "--experiments-dir", experiments,
                "--workflows-dir", Path.Combine(Root, "workflows"));
            submit.Exit.Should().Be(ExitCodes.Ok, submit.Out + submit.Err);
            var sweepId = SweepIdIn().Match(submit.Out).Groups[1].Value;
            sweepId.Should().StartWith("pr21-smoke-sweep-");
            gh.Comments.Single().Body.Should().Contain("### Sweep `smoke-sweep`: 3 variants submitted").And.Contain("Tokens per source", "the plan section is kept");
            gh.Statuses.Should().ContainSingle().Which.Should().Match<FakeGitHub.Status>(s => s.State == "pending" && s.Context == "wf/experiment/smoke-sweep");
            var sweep = (await new SweepRecordStore(host.Client.Store).GetAsync(sweepId))!.Record;
            sweep.Variants.Select(v => v.RunId).Should().Equal($"{sweepId}-01", $"{sweepId}-02", $"{sweepId}-03");
            sweep.Origin!.PullRequest.Should().Be(21);

            // 3. The variants run; the sweep's comment follows them.
            // Three smoke-sized trainings one after another on the one agent: 1-2 min on a quiet 2-core box; the same
            // allowance as the GitOps story for a box shared with other builds.
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8)))
            {
                foreach (var v in sweep.Variants)
                {
                    var view = await engine.WaitAsync(v.RunId, timeout.Token, "8 min");
                    view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
                    view.Record.SweepId.Should().Be(sweepId);
                }

                // The last variant's hook may still be writing.
                while (!gh.Comments.Single().Body.Contains("all 3 variants finished", StringComparison.Ordinal))
                {
                    await Task.Delay(200, timeout.Token);
                }
            }

            var runSeconds = clock.Elapsed.TotalSeconds;
            var bodies = gh.Requests.Where(r => r.Method == "PATCH").Select(r => r.Json!["body"]!.GetValue<string>()).ToList();
            bodies.Should().Contain(b => FinishedSoFar().IsMatch(b), "the comment is updated as variants finish, before all have");
            var body = gh.Comments.Single().Body;
            body.Should().Contain("all 3 variants finished (3 succeeded)").And.Contain("#### Comparison")
                .And.Contain("Runs and the parameters that differ").And.Contain("| `data.upsampling.mode` | `training.lr` |")
                .And.Contain("Validation loss by domain and length bucket (Table 5 layout)").And.Contain("Tokens per source");
            var images = ImageIn().Matches(body).Select(m => new Uri(m.Groups[1].Value)).ToList();
            images.Should().HaveCount(5, "three heatmaps side by side and two differences against the baseline");
            using (var http = new HttpClient())
            {
                using var fetched = await http.GetAsync(images[^1]);
                fetched.StatusCode.Should().Be(System.Net.HttpStatusCode.OK);
                fetched.Content.Headers.ContentType!.MediaType.Should().Be("image/png");
            }

            var statuses = gh.Statuses.Where(s => s.Context == "wf/experiment/smoke-sweep").Select(s => s.State).ToList();
            statuses[..^1].Should().OnlyContain(s => s == "pending", "pending until every variant finished");
            statuses[^1].Should().Be("success");

            // 4. The measure pass was shared: one length index of the input in the cache, produced by one variant's run,
            //    and the two per-source learning rates read one prepared dataset.
            var store = host.Client.Store;
            var measures = await ManifestsUnder(store, "cas/dataprep-measure/");
            var measure = measures.Should().ContainSingle("three variants, one input file, one measure pass").Which;
            measure["producer"]!.GetValue<string>().Should().Contain($"/{sweepId}-", "the producer is one of the variants' runs");
            var records = new List<RunRecord>();
            foreach (var v in sweep.Variants)
            {
                records.Add((await host.Client.Runs.GetAsync(v.RunId))!.Record);
            }

            string Prefix(RunRecord r, string step) => r.Steps.Single(s => s.Step == step).OutputPrefix!;
            Prefix(records[1], "prepare-data").Should().Be(Prefix(records[2], "prepare-data"));
            Prefix(records[0], "prepare-data").Should().NotBe(Prefix(records[1], "prepare-data"));
            (await ManifestsUnder(store, "cas/prepare-data/")).Should().HaveCount(2, "two distinct data preps for three variants");

            // 5. The comparison's numbers are the variants' own reports' numbers.
            var folder = Path.Combine(scratch, "compare");
            var compare = Wf("compare", sweepId, "--out", folder, "--json");
            compare.Exit.Should().Be(ExitCodes.Ok, compare.Err);
            var comparison = JsonNode.Parse(compare.Out)!;
            comparison["baseline"]!.GetValue<string>().Should().Be($"{sweepId}-01");
            comparison["differing_parameters"]!.AsArray().Select(p => p!.GetValue<string>()).Should().Equal("data.upsampling.mode", "training.lr");
            var outputs = new RunOutputsReader(store);
            for (var i = 0; i < records.Count; i++)
            {
                var report = JsonNode.Parse((await outputs.ReadTextAsync((await outputs.OutputOfAsync(records[i], "report"))!, "report/report.json"))!)!;
                var row = comparison["runs"]![i]!;
                row["run_id"]!.GetValue<string>().Should().Be(records[i].RunId);
                row["needle"]!["mean"]!.GetValue<double>().Should().Be(report["needle"]!["mean"]!.GetValue<double>());
                row["needle"]!["effective_length"]?.GetValue<long>().Should().Be(report["needle"]!["effective_length"]?.GetValue<long>());
                row["needle"]!["per_length"]!.AsArray().Select(l => (l!["length"]!.GetValue<long>(), l["mean"]!.GetValue<double>())).Should().Equal(
                    report["needle"]!["per_length"]!.AsArray().Select(l => (l!["length"]!.GetValue<long>(), l["mean"]!.GetValue<double>())));
                var ours = row["loss"]!["buckets"]!.AsArray().Select(c => (c!["bucket"]!.GetValue<string>(), c["source"]!.GetValue<string>(), c["loss"]!.GetValue<double>())).ToList();
                var theirs = report["loss"]!["rows"]!.AsArray().Select(c => (c!["bucket"]!.GetValue<string>(), c["source"]!.GetValue<string>(), c["loss"]!.GetValue<double>())).ToList();
                ours.Should().BeEquivalentTo(theirs);
                ours.Should().NotBeEmpty();
                var overall = report["loss"]!["overall_at"]!.AsObject();
                row["loss"]!["lengths"]!.AsArray().Select(l => (l!["length"]!.GetValue<long>().ToString(System.Globalization.CultureInfo.InvariantCulture), l["loss"]!.GetValue<double>()))
                    .Should().Equal(overall.Select(p => (p.Key, p.Value!.GetValue<double>())));
                if (i > 0)
                {
                    row["needle"]!["delta"]!.GetValue<double>().Should().Be(report["needle"]!["mean"]!.GetValue<double>() - comparison["runs"]![0]!["needle"]!["mean"]!.GetValue<double>());
                }
            }

            File.ReadAllText(Path.Combine(folder, "comparison.md")).Should().MatchRegex("(🟢|🔴|⚪) [+−]?[0-9]\\.[0-9]{3}", "loss deltas carry the paper's colour marks");
            Directory.GetFiles(folder, "*.png").Should().HaveCount(5);

            // 6. wf status SWEEP shows the variants together; the GPU queue took the trainings in variant order among those waiting.
            var status = Wf("status", sweepId);
            status.Exit.Should().Be(ExitCodes.Ok, status.Err);
            status.Out.Should().Contain("smoke-sweep-none-lr-low").And.Contain("smoke-sweep-per-source-lr-high").And.Contain("3 variants: 3 succeeded");
            // A job waits from when its job.json exists (EnqueuedAt is the orchestration's time, before the blob is
            // written; its entry in gpu-queue/ follows at once and is gone once it finished); an agent's listing takes
            // a moment, hence the margin. It started when the first agent claimed it.
            var trains = new List<(string Id, DateTimeOffset Visible, DateTimeOffset Started)>();
            foreach (var v in sweep.Variants)
            {
                foreach (var (job, jobStatus) in (await new GpuJobStore(store).ListForRunAsync(v.RunId)).Where(j => j.Job.Work.Type == StepContracts.Train.Type))
                {
                    var visible = (await store.GetPropertiesAsync(GpuJobStore.JobBlob(job.Ref)))!.LastModified;
                    trains.Add((job.JobId, visible, jobStatus!.Claims[0].StartedAt));
                }
            }

            trains.Should().HaveCount(3);
            foreach (var earlier in trains)
            {
                foreach (var later in trains.Where(t => string.CompareOrdinal(t.Id, earlier.Id) > 0))
                {
                    var overtaken = earlier.Visible < later.Started - TimeSpan.FromSeconds(3) && earlier.Started > later.Started;
                    overtaken.Should().BeFalse($"{later.Id} started at {later.Started:O} while {earlier.Id} (an earlier variant) waited since {earlier.Visible:O}");
                }
            }

            log.WriteLine(string.Join("\n", trains.Select(t => $"{t.Id}: visible {t.Visible:HH:mm:ss.fff}, started {t.Started:HH:mm:ss.fff}")));

            // On merge the sweep file is archived: each variant with its runs, and the sweep itself (its path frozen).
            var archive = Wf("archive", "--commit", "6666666666666666666666666666666666666666", sweepFile);
            archive.Exit.Should().Be(ExitCodes.Ok, archive.Err);
            archive.Out.Should().Contain($"archived smoke-sweep-per-source-lr-high (experiments/smoke-sweep.yaml, {records[2].ExperimentHash[..12]}): 1 run(s): {records[2].RunId}")
                .And.Contain("archived smoke-sweep (experiments/smoke-sweep.yaml,").And.Contain("3 run(s)");

            // 7. wf run of the same sweep file: every step of every variant comes from the cache, then the comparison.
            var runAgain = Wf("run", sweepFile);
            runAgain.Exit.Should().Be(ExitCodes.Ok, runAgain.Out + runAgain.Err);
            runAgain.Out.Should().Contain("submitted sweep sweep-");
            Regex.Matches(runAgain.Out, "train: succeeded 1/1 - cached").Should().HaveCount(3);
            var written = ComparisonIn().Match(runAgain.Out).Groups[1].Value;
            File.Exists(written).Should().BeTrue(runAgain.Out);
            Directory.Delete(Path.GetDirectoryName(Path.GetFullPath(written))!, recursive: true);

            // 8. One failing variant does not stop the others: a sweep whose second variant reads a missing file.
            var failing = WriteFailingSweep(scratch);
            var submitted = Wf("submit", failing);
            submitted.Exit.Should().Be(ExitCodes.Ok, submitted.Err);
            var failingSweep = submitted.Out.Trim();
            // Its good variant trains nothing (cached) but evaluates again: 20-40 s on a quiet box.
            using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4)))
            {
                (await engine.WaitAsync($"{failingSweep}-01", timeout.Token, "4 min")).Record.Status.Should().Be(RunStatus.Succeeded);
                var failed = await engine.WaitAsync($"{failingSweep}-02", timeout.Token, "4 min");
                failed.Record.Status.Should().Be(RunStatus.Failed);
                failed.Record.Error.Should().Contain("step 'prepare-data'");
            }

            // The same experiment as smoke-sweep's first variant under another name: the steps that do not read the
            // name (their contracts' parameters) come from the cache; the evaluations and the report write it, so they run.
            var partialSteps = (await host.Client.Runs.GetAsync($"{failingSweep}-01"))!.Record.Steps;
            partialSteps.Where(x => x.Type == StepContracts.PrepareData.Type || x.Type == StepContracts.Train.Type)
                .Should().HaveCount(2).And.OnlyContain(x => x.Cached, "the same data and training as smoke-sweep's first variant");
            partialSteps.Where(x => x.Type == StepContracts.EvaluateNeedle.Type).Should().OnlyContain(x => !x.Cached, "the needle results carry the experiment's name");
            var failingStatus = Wf("status", failingSweep);
            failingStatus.Out.Should().Contain("2 variants: 1 succeeded, 1 failed");
            var withFailure = Wf("compare", failingSweep, "--out", Path.Combine(scratch, "compare-failing"));
            withFailure.Exit.Should().Be(ExitCodes.Ok, withFailure.Err);
            withFailure.Out.Should().Contain("| failed |").And.Contain("`partial-missing` failed:");
            log.WriteLine($"sweep done at {runSeconds:0.0}s; whole test {clock.Elapsed.TotalSeconds:0.0}s");
        }
        finally
        {
            await engine.DisposeAsync();
            if (Directory.Exists(scratch))
            {
                Directory.Delete(scratch, recursive: true);
            }
        }
    }

    /// <summary>
    /// A sweep of two variants in a folder of its own, with a copy of the workflow that gives each step one attempt:
    /// 'present' is smoke-sweep's first variant under another name (its data and training cached by now), 'missing' reads
    /// a file that does not exist.
    /// </summary>
    private static string WriteFailingSweep(string scratch)
    {
        var root = Path.Combine(scratch, "failing");
        Directory.CreateDirectory(Path.Combine(root, "experiments"));
        Directory.CreateDirectory(Path.Combine(root, "workflows"));
        // The same relative paths as the repository's, so 'present' reads what smoke-sweep's first variant read (its data and training cached).
        Directory.CreateDirectory(Path.Combine(root, "samples", "slimpajama-pd"));
        foreach (var f in new[] { "sample.jsonl.zst", "heldout.jsonl.zst" })
        {
            File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", f), Path.Combine(root, "samples", "slimpajama-pd", f));
        }

        var template = File.ReadAllText(Path.Combine(Root, "workflows", "continual-pretraining.yaml"));
        File.WriteAllText(Path.Combine(root, "workflows", "continual-pretraining.yaml"), Regex.Replace(template, @"max_attempts: \d+", "max_attempts: 1"));
        var yaml = File.ReadAllText(Path.Combine(Root, "experiments", "smoke-sweep.yaml"))
            .Replace("name: smoke-sweep", "name: partial", StringComparison.Ordinal)
            .Replace("  paths: [../samples/slimpajama-pd/sample.jsonl.zst]\n", "", StringComparison.Ordinal);
        yaml = yaml[..yaml.IndexOf("matrix:", StringComparison.Ordinal)] + """
            matrix:
              name: "{name}-{data.paths}"
              data.upsampling.mode: [none]
              training.lr: { lr-low: 1.0e-3 }
              data.paths: { present: [../samples/slimpajama-pd/sample.jsonl.zst], missing: [../samples/slimpajama-pd/does-not-exist.jsonl.zst] }

            """.Replace("            ", "", StringComparison.Ordinal);
        var file = Path.Combine(root, "experiments", "partial.yaml");
        File.WriteAllText(file, yaml);
        return file;
    }

    private static async Task<List<JsonNode>> ManifestsUnder(IArtifactStore store, string prefix)
    {
        var manifests = new List<JsonNode>();
        await foreach (var blob in store.ListAsync(prefix))
        {
            if (blob.Name.EndsWith("/manifest.json", StringComparison.Ordinal) && blob.Name.Count(c => c == '/') == 3)
            {
                await using var stream = await store.OpenReadAsync(blob.Name);
                manifests.Add((await JsonNode.ParseAsync(stream))!);
            }
        }

        return manifests;
    }

    [GeneratedRegex(@"comparison: (\S+comparison\.md)")]
    private static partial Regex ComparisonIn();

    [GeneratedRegex(@"smoke-sweep: run (\S+) submitted")]
    private static partial Regex SweepIdIn();

    [GeneratedRegex(@"### Sweep `smoke-sweep`: [12] of 3 variants finished")]
    private static partial Regex FinishedSoFar();

    [GeneratedRegex(@"!\[[^\]]*\]\((https?://[^)\s]+)\)")]
    private static partial Regex ImageIn();
}
