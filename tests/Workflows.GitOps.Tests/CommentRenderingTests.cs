using Workflows.Experiments.Planning;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Comments;

namespace Workflows.GitOps.Tests;

public class CommentRenderingTests
{
    private const string Sha = "0123456789abcdef0123456789abcdef01234567";

    private const string SmokeYaml = """
        name: smoke
        profile: smoke
        model:
          base: tiny
          rope: { theta: 10000 }
        data:
          mix: { Book: 0.5, Github: 0.5 }
          upsampling: { mode: per-source, long_threshold: 1K, short_keep_ratio: 0.5 }
          token_budget: 96K
          context: 1K
          tokenizer: gpt2
        training:
          batch_tokens: 2K
          micro_batch: 2
          precision: fp32
        resources:
          gpu: h200
          gpu_count: 8
        """;

    /// <summary>
    /// A real plan from the real planner, with the hash and the compute estimate pinned so that the golden tests this
    /// component's rendering, not the planner's formulas.
    /// </summary>
    private static Plan PinnedPlan()
    {
        var loaded = ExperimentLoader.LoadText("experiments/smoke.yaml", SmokeYaml, new LoadOptions(PolicyMode.Off));
        loaded.Diagnostics.Should().BeEmpty();
        var plan = Planner.Create(loaded.Spec!);
        return plan with
        {
            ContentHash = "5f3c2a1b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
            Compute = plan.Compute with
            {
                Estimates =
                [
                    new GpuEstimate("a100-80g", 312, 0.52, 38.94, 4.87, 132.4),
                    new GpuEstimate("h100", 989, 0.52, 12.28, 1.54, 85.7),
                    new GpuEstimate("h200", 989, 0.52, 12.28, 1.54, 97.2),
                ],
            },
        };
    }

    private const string PlanMarkdown = "#### Plan\n\n| | |\n|---|---|\n| experiment | smoke |\n\n#### Tokens per source\n\n| source | weight |\n|---|---|\n| Book | 0.5000 |\n";

    [Fact]
    public void Plan_comment_for_a_valid_file()
    {
        var body = CommentSections.Compose("smoke", null, CommentSections.Plan,
            PlanComment.Render(new PlanCommentInput("experiments/smoke.yaml", Sha, PinnedPlan(), PlanMarkdown, [])));

        Golden.Verify("plan-valid.md", body);
    }

    [Fact]
    public void Plan_comment_on_CPU_says_there_is_no_GPU_cost()
    {
        var plan = PinnedPlan();
        plan = plan with { Compute = plan.Compute with { SelectedGpu = "cpu", GpuCount = 1 } };

        var text = PlanComment.Render(new PlanCommentInput("experiments/smoke.yaml", null, plan, null, []));

        text.Should().Contain("**Runs on cpu** (resources.gpu); no GPU cost.").And.NotContain("<details>");
    }

    [Fact]
    public void Plan_comment_for_an_invalid_file_lists_errors_as_file_line_column()
    {
        var errors = new[]
        {
            new Diagnostic(new SourceLocation("experiments/smoke.yaml", 7, 3), DiagnosticCode.UnknownKey, "data.token_budgett",
                "unknown key 'token_budgett'", "did you mean token_budget?"),
            new Diagnostic(new SourceLocation("experiments/smoke.yaml", 12, 14), DiagnosticCode.OutOfRange, "training.lr",
                "lr must be > 0, got -1 <script>", null),
        };

        var body = CommentSections.Compose("smoke", null, CommentSections.Plan,
            PlanComment.Render(new PlanCommentInput("experiments/smoke.yaml", Sha, null, null, errors)));

        Golden.Verify("plan-invalid.md", body);
    }

    [Fact]
    public void Real_validation_errors_appear_with_their_positions()
    {
        var loaded = ExperimentLoader.LoadText("experiments/smoke.yaml", SmokeYaml.Replace("token_budget:", "token_budgett:", StringComparison.Ordinal),
            new LoadOptions(PolicyMode.Off));
        loaded.Diagnostics.Should().NotBeEmpty();

        var text = PlanComment.Render(new PlanCommentInput("experiments/smoke.yaml", Sha, null, null, loaded.Diagnostics));

        foreach (var d in loaded.Diagnostics)
        {
            text.Should().Contain($"`experiments/smoke.yaml:{d.Location.Line}:{d.Location.Column}` {d.Code}");
        }

        text.Should().Contain("validation failed").And.Contain("fails until");
    }

    private static RunReport Finished() => new(
        "smoke",
        "run-20240215-abc123",
        RunState.Succeeded,
        Sha,
        "maria",
        new Uri("https://wfartifacts.blob.core.windows.net/public/heatmaps/9f86d081884c7d65.png"),
        0.8734,
        "| domain | 0-512 | 512-1K | baseline 0-512 | baseline 512-1K |\n|---|---:|---:|---:|---:|\n| Book | 2.31 | 2.05 | 2.35 | 2.20 |\n| Github | 1.12 | 0.98 | 1.15 | 1.07 |\n",
        "original-5b-80k",
        [
            new ArtifactLink("report (Markdown)", new Uri("https://wfartifacts.blob.core.windows.net/runs/run-20240215-abc123/report.md")),
            new ArtifactLink("final model", new Uri("https://wfartifacts.blob.core.windows.net/runs/run-20240215-abc123/model/")),
        ],
        [
            new StepDuration("prepare-data", TimeSpan.FromSeconds(74)),
            new StepDuration("train", TimeSpan.FromMinutes(61) + TimeSpan.FromSeconds(5)),
            new StepDuration("evaluate", TimeSpan.FromSeconds(412)),
        ],
        Haystack: "wf's public-domain sample (samples/haystack), not the paper's haystack (sha256 20c4de278be2)");

    [Fact]
    public void Results_replace_the_run_section_and_keep_the_plan()
    {
        var withPlan = CommentSections.Compose("smoke", null, CommentSections.Plan,
            PlanComment.Render(new PlanCommentInput("experiments/smoke.yaml", Sha, PinnedPlan(), PlanMarkdown, [])));
        var submitted = CommentSections.Compose("smoke", withPlan, CommentSections.Run,
            ResultsComment.Render(new RunReport("smoke", "run-20240215-abc123", RunState.Submitted, Sha, "maria")));

        var finished = CommentSections.Compose("smoke", submitted, CommentSections.Run, ResultsComment.Render(Finished()));

        Golden.Verify("results-succeeded.md", finished);
        CommentSections.Read(finished, CommentSections.Plan).Should().Be(CommentSections.Read(withPlan, CommentSections.Plan));
        finished.Should().NotContain("Submitted by");
    }

    [Fact]
    public void Submitted_run_section()
    {
        var text = ResultsComment.Render(new RunReport("smoke", "run-1", RunState.Submitted, Sha, "maria"));

        text.Should().Be("### Experiment `smoke`: run `run-1` submitted\n\nSubmitted by `maria` for commit `0123456`. This comment is updated when the run finishes; the status **wf/experiment/smoke** shows progress.\n");
    }

    [Fact]
    public void Failed_run_section_shows_the_error_in_a_fence_longer_than_its_backticks()
    {
        var failed = new RunReport("smoke", "run-2", RunState.Failed, Sha, Error: "train: CUDA out of memory\n```\nat step 12", Durations: [new StepDuration("train", TimeSpan.FromSeconds(3725))]);

        Golden.Verify("results-failed.md", ResultsComment.Render(failed));
        failed.StatusState.Should().Be(Workflows.GitOps.GitHub.CommitStatusState.Failure);
    }

    [Fact]
    public void An_inline_data_image_is_refused()
    {
        var act = () => ResultsComment.Render(Finished() with { HeatmapUrl = new Uri("data:image/png;base64,iVBORw0KGgo=") });

        act.Should().Throw<ArgumentException>().WithMessage("*blob storage*");
    }

    [Fact]
    public void Urls_cannot_close_a_Markdown_link()
    {
        var text = ResultsComment.Render(Finished() with { HeatmapUrl = new Uri("https://x.example.com/a (1).png") });

        text.Should().Contain("](https://x.example.com/a%20%281%29.png)");
    }

    [Theory]
    [InlineData(RunState.Submitted, "pending", "run r submitted")]
    [InlineData(RunState.Running, "pending", "run r running")]
    [InlineData(RunState.Succeeded, "success", "run r succeeded")]
    [InlineData(RunState.Failed, "failure", "run r failed")]
    [InlineData(RunState.Cancelled, "error", "run r cancelled")]
    public void Run_states_map_to_commit_statuses(RunState state, string status, string description)
    {
        var r = new RunReport("smoke", "r", state);

        r.StatusState.ToString().ToLowerInvariant().Should().Be(status);
        r.StatusDescription.Should().Be(description);
    }

    [Fact]
    public void Untrusted_text_cannot_ping_link_or_inject_html()
    {
        Md.Text("@acme/owners see [x](http://evil) <img src=x> a|b").Should().Be(
            "@\u200Bacme/owners see \\[x\\](http://evil) &lt;img src=x&gt; a\\|b");
        Md.Code("a`b").Should().Be("`` a`b ``");
        Md.Code("plain").Should().Be("`plain`");
    }

    [Fact]
    public void Durations_read_naturally()
    {
        Md.Duration(TimeSpan.FromSeconds(3725)).Should().Be("1h 02m 05s");
        Md.Duration(TimeSpan.FromSeconds(412)).Should().Be("6m 52s");
        Md.Duration(TimeSpan.FromSeconds(45)).Should().Be("45s");
        Md.Duration(TimeSpan.FromMilliseconds(420)).Should().Be("0.4s");
        Md.Duration(TimeSpan.FromHours(50)).Should().Be("50h 00m 00s");
    }
}
