using YamlDotNet.RepresentationModel;

namespace Workflows.GitOps.Tests;

/// <summary>
/// The security rules of docs/gitops.md, checked on the workflow files themselves (schema validity is .ci/run's
/// action-validator step): least privilege, secrets in the submitting jobs only, no pull_request_target, no
/// expression pasted into a shell script, and no job with secrets that checks out pull-request code at the root.
/// </summary>
public class WorkflowFileTests
{
    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, ".github", "workflows", "experiment-pr.yml")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException(".github/workflows/experiment-pr.yml not found above " + AppContext.BaseDirectory);
    }

    public static TheoryData<string> Files() => new()
    {
        "experiment-pr.yml", "experiment-archive.yml", "experiment-rerun.yml", "experiment-label.yml", "experiment-label-run.yml", "ci.yml",
    };

    /// <summary>The workflows whose jobs hold the engine's secrets (environment experiment-runs).</summary>
    public static TheoryData<string> SecretWorkflows() => new() { "experiment-pr.yml", "experiment-archive.yml", "experiment-rerun.yml", "experiment-label-run.yml" };

    private static YamlMappingNode Load(string file)
    {
        var stream = new YamlStream();
        using var reader = new StringReader(File.ReadAllText(Path.Combine(Root, ".github", "workflows", file)));
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

    private static IEnumerable<(string Name, YamlMappingNode Job)> Jobs(YamlMappingNode workflow) =>
        ((YamlMappingNode)Get(workflow, "jobs")!).Children.Select(p => (((YamlScalarNode)p.Key).Value!, (YamlMappingNode)p.Value));

    private static IEnumerable<YamlMappingNode> Steps(YamlMappingNode job) =>
        Get(job, "steps") is YamlSequenceNode s ? s.Children.Cast<YamlMappingNode>() : [];

    private static string Text(YamlNode node)
    {
        var stream = new YamlStream(new YamlDocument(node));
        using var writer = new StringWriter();
        stream.Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    [Theory]
    [MemberData(nameof(SecretWorkflows))]
    public void Nothing_is_granted_by_default_and_every_job_names_its_permissions(string file)
    {
        var workflow = Load(file);

        Get(workflow, "permissions").Should().BeOfType<YamlMappingNode>().Which.Children.Should().BeEmpty();
        foreach (var (name, job) in Jobs(workflow))
        {
            Get(job, "permissions").Should().NotBeNull($"job {name} states its permissions");
            var granted = ((YamlMappingNode)Get(job, "permissions")!).Children
                .Where(p => ((YamlScalarNode)p.Value).Value == "write").Select(p => ((YamlScalarNode)p.Key).Value).ToList();
            granted.Should().BeSubsetOf(["pull-requests", "statuses"], $"job {name} writes only comments, labels and statuses");
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Pull_request_target_is_never_used(string file) =>
        Get((YamlMappingNode)Get(Load(file), "on")!, "pull_request_target").Should().BeNull();

    [Theory]
    [MemberData(nameof(Files))]
    public void No_expression_is_pasted_into_a_shell_script(string file)
    {
        foreach (var (name, job) in Jobs(Load(file)))
        {
            foreach (var step in Steps(job))
            {
                if (Get(step, "run") is YamlScalarNode run)
                {
                    run.Value.Should().NotContain("${{", $"job {name}: values reach scripts through env, so a comment or branch name cannot inject shell");
                }
            }
        }
    }

    private static string Raw(string file) => File.ReadAllText(Path.Combine(Root, ".github", "workflows", file));

    private static IEnumerable<YamlMappingNode> Checkouts(YamlMappingNode job) =>
        Steps(job).Where(s => (Get(s, "uses") as YamlScalarNode)?.Value?.StartsWith("actions/checkout@", StringComparison.Ordinal) == true);

    private static string? Scalar(YamlMappingNode map, string key) => (Get(map, key) as YamlScalarNode)?.Value;

    private const string DefaultBranchRef = "${{ github.event.repository.default_branch }}";
    private const string OnDefaultBranch = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)";

    [Theory]
    [MemberData(nameof(Files))]
    public void Every_action_is_pinned_by_a_full_commit_sha_with_its_tag_in_a_comment(string file)
    {
        var uses = Raw(file).Split('\n').Where(l => l.TrimStart().StartsWith("- uses:", StringComparison.Ordinal) || l.TrimStart().StartsWith("uses:", StringComparison.Ordinal)).ToList();

        foreach (var line in uses)
        {
            line.Should().MatchRegex(@"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*\s*$", "a tag can be moved to other code; a commit cannot (the comment says which release it is)");
        }

        foreach (var (name, job) in Jobs(Load(file)))
        {
            foreach (var step in Steps(job))
            {
                if (Scalar(step, "uses") is { } action)
                {
                    action.Should().MatchRegex("@[0-9a-f]{40}$", $"job {name} pins {action}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(SecretWorkflows))]
    public void Secrets_appear_only_in_jobs_of_the_experiment_runs_environment(string file)
    {
        foreach (var (name, job) in Jobs(Load(file)))
        {
            if (Text(job).Contains("secrets.", StringComparison.Ordinal))
            {
                Scalar(job, "environment").Should().Be("experiment-runs", $"job {name} reads a secret: only environment secrets, limited to the default branch");
            }
        }
    }

    [Fact]
    public void A_pull_request_event_cannot_reach_a_job_with_secrets()
    {
        // pull_request runs the pull request's own copy of the workflow file: such a workflow may hold no secret job.
        var pr = Load("experiment-pr.yml");
        var on = (YamlMappingNode)Get(pr, "on")!;
        var types = ((YamlSequenceNode)Get((YamlMappingNode)Get(on, "pull_request")!, "types")!).Children.Select(c => ((YamlScalarNode)c).Value).ToList();
        types.Should().NotContain("labeled", "the label is handed over to a default-branch workflow_run instead");

        var jobs = Jobs(pr).ToDictionary(j => j.Name, j => j.Job);
        jobs.Where(j => Text(j.Value).Contains("secrets.", StringComparison.Ordinal) || Get(j.Value, "environment") is not null).Select(j => j.Key).Should().Equal("submit");
        Scalar(jobs["submit"], "needs").Should().Be("guard");
        Scalar(jobs["submit"], "if").Should().Contain("needs.guard.outputs.verdict == 'run'");
        Scalar(jobs["guard"], "if").Should().StartWith("github.event_name == 'issue_comment'", "issue_comment always runs the default branch's workflow file")
            .And.Contain("startsWith(github.event.comment.body, '/run')");
        Text(Get(on, "issue_comment")!).Should().Contain("created").And.NotContain("edited");

        var label = Load("experiment-label.yml");
        ((YamlMappingNode)Get(label, "on")!).Children.Keys.Select(k => ((YamlScalarNode)k).Value).Should().Equal("pull_request");
        Raw("experiment-label.yml").Should().NotContain("secrets.").And.NotContain("environment:").And.NotContain("actions/checkout");
        foreach (var (name, job) in Jobs(label))
        {
            Get(job, "permissions").Should().BeOfType<YamlMappingNode>().Which.Children.Should().BeEmpty($"label job {name} holds nothing");
        }
    }

    [Fact]
    public void The_label_is_handed_over_to_a_default_branch_workflow_run_that_pins_the_labeled_commit()
    {
        var workflow = Load("experiment-label-run.yml");
        var on = (YamlMappingNode)Get(workflow, "on")!;
        on.Children.Keys.Select(k => ((YamlScalarNode)k).Value).Should().Equal("workflow_run");
        var run = (YamlMappingNode)Get(on, "workflow_run")!;
        ((YamlSequenceNode)Get(run, "workflows")!).Children.Select(c => ((YamlScalarNode)c).Value).Should().Equal("experiment-label");

        var jobs = Jobs(workflow).ToDictionary(j => j.Name, j => j.Job);
        Scalar(jobs["guard"], "if").Should().Contain("github.event.workflow_run.event == 'pull_request'");
        Scalar(jobs["submit"], "needs").Should().Be("guard");
        var guard = Text(jobs["guard"]);
        guard.Should().Contain("--event workflow_run").And.Contain("--approved-sha \"$HEAD_SHA\"").And.Contain("github.event.workflow_run.head_sha");
        Text(jobs["submit"]).Should().Contain("--approved-sha \"$LABEL_SHA\"").And.Contain("--expect-sha \"$HEAD_SHA\"").And.Contain("--environment experiment-runs");
    }

    [Theory]
    [InlineData("experiment-pr.yml", "guard")]
    [InlineData("experiment-pr.yml", "submit")]
    [InlineData("experiment-pr.yml", "archive-check")]
    [InlineData("experiment-label-run.yml", "guard")]
    [InlineData("experiment-label-run.yml", "submit")]
    public void Jobs_that_decide_or_hold_secrets_build_the_default_branch_and_read_the_head_as_data_only(string file, string job)
    {
        var steps = Jobs(Load(file)).Single(j => j.Name == job).Job;
        var checkouts = Checkouts(steps).ToList();

        checkouts.Should().NotBeEmpty();
        foreach (var checkout in checkouts)
        {
            var with = (YamlMappingNode)Get(checkout, "with")!;
            Scalar(with, "persist-credentials").Should().Be("false");
            if (Scalar(with, "path") is { } path)
            {
                path.Should().Be("pr-head", "the pull request's head is checked out beside the code, as data");
                Scalar(with, "sparse-checkout").Should().Be("experiments", "only the experiment files, nothing to build");
            }
            else
            {
                Scalar(with, "ref").Should().Be(DefaultBranchRef, $"{file} {job} builds wf from the default branch only");
            }
        }

        foreach (var step in Steps(steps).Where(s => Get(s, "run") is not null))
        {
            Scalar(step, "run")!.Should().NotContain("pr-head/src").And.NotContain("cd pr-head", "nothing from the head is built or run");
        }
    }

    [Theory]
    [InlineData("experiment-rerun.yml", "rerun")]
    [InlineData("experiment-archive.yml", "archive")]
    public void Dispatched_and_pushed_jobs_with_secrets_run_only_on_the_default_branch(string file, string job)
    {
        var jobs = Jobs(Load(file)).ToDictionary(j => j.Name, j => j.Job);

        Scalar(jobs[job], "if").Should().Be(OnDefaultBranch);
        Scalar(jobs[job], "environment").Should().Be("experiment-runs");
    }

    [Fact]
    public void A_rerun_dispatched_on_another_branch_fails_loudly_and_echoes_no_input()
    {
        var jobs = Jobs(Load("experiment-rerun.yml")).ToDictionary(j => j.Name, j => j.Job);

        Scalar(jobs["refuse"], "if").Should().Be(OnDefaultBranch.Replace("==", "!=", StringComparison.Ordinal));
        Text(jobs["refuse"]).Should().Contain("exit 1").And.NotContain("secrets.");
        foreach (var line in Raw("experiment-rerun.yml").Split('\n').Where(l => l.Contains("::error::", StringComparison.Ordinal)))
        {
            line[line.IndexOf("::error::", StringComparison.Ordinal)..].Should().NotContain("$", "an ::error:: line never quotes an input (a newline in it would forge another command)");
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void No_workflow_command_line_quotes_a_variable(string file)
    {
        foreach (var line in Raw(file).Split('\n').Where(l => l.Contains("::error", StringComparison.Ordinal) || l.Contains("::warning", StringComparison.Ordinal) || l.Contains("::notice", StringComparison.Ordinal)))
        {
            var command = line[line.IndexOf("::", StringComparison.Ordinal)..];
            command.Should().NotContain("$", $"{file}: {line.Trim()}");
        }
    }

    [Fact]
    public void The_plan_job_gets_no_secrets_and_switches_workflow_commands_off_around_wf_output()
    {
        var jobs = Jobs(Load("experiment-pr.yml")).ToDictionary(j => j.Name, j => j.Job);

        Text(jobs["plan"]).Should().NotContain("secrets.");
        foreach (var name in new[] { "Validate", "Plan (job summary)" })
        {
            var run = Scalar(Steps(jobs["plan"]).Single(s => Scalar(s, "name") == name), "run")!;
            run.Should().Contain("echo \"::stop-commands::$token\"").And.Contain("echo \"::$token::\"");
            run.IndexOf("::stop-commands::", StringComparison.Ordinal).Should().BeLessThan(run.IndexOf("wf ", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void The_archive_check_runs_default_branch_code_fails_closed_and_reads_the_heads_names()
    {
        var job = Jobs(Load("experiment-pr.yml")).Single(j => j.Name == "archive-check").Job;
        var run = Scalar(Steps(job).Single(s => Scalar(s, "name") == "Archived experiments are immutable"), "run")!;

        Text(job).Should().NotContain("secrets.");
        run.Should().Contain("--head-dir pr-head").And.Contain("exit 1").And.Contain("WF_ARCHIVE_CHECK\" = \"off\"");
        run.Should().NotContain("exit 0; fi\n  wf", "an unset index URL is not a pass");
    }

    [Fact]
    public void Submit_jobs_pin_the_head_the_guard_approved_and_check_the_environment()
    {
        var pr = Jobs(Load("experiment-pr.yml")).ToDictionary(j => j.Name, j => j.Job);
        var submit = Text(pr["submit"]);

        submit.Should().Contain("--expect-sha \"$HEAD_SHA\"").And.Contain("--requested-at \"$REQUESTED_AT\"").And.Contain("--environment experiment-runs");
        Text(pr["guard"]).Should().Contain("--requested-at \"$REQUESTED_AT\"").And.Contain("github.event.comment.created_at");
        ((YamlMappingNode)Get(pr["submit"], "permissions")!).Children.Should().ContainKey(new YamlScalarNode("actions"));
    }
}
