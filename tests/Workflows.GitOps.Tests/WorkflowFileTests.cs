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

    public static TheoryData<string> Files() => new() { "experiment-pr.yml", "experiment-archive.yml", "experiment-rerun.yml" };

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
    [MemberData(nameof(Files))]
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

    [Fact]
    public void Only_the_submit_job_sees_secrets_in_the_pr_workflow_and_it_builds_the_default_branch_only()
    {
        var jobs = Jobs(Load("experiment-pr.yml")).ToDictionary(j => j.Name, j => j.Job);

        jobs.Where(j => Text(j.Value).Contains("secrets.", StringComparison.Ordinal)).Select(j => j.Key).Should().Equal("submit");
        ((YamlScalarNode)Get(jobs["submit"], "needs")!).Value.Should().Be("guard");
        ((YamlScalarNode)Get(jobs["submit"], "if")!).Value.Should().Contain("needs.guard.outputs.verdict == 'run'");

        foreach (var name in new[] { "guard", "submit" })
        {
            var checkouts = Steps(jobs[name]).Where(s => (Get(s, "uses") as YamlScalarNode)?.Value?.StartsWith("actions/checkout@", StringComparison.Ordinal) == true).ToList();
            checkouts.Should().NotBeEmpty();
            foreach (var checkout in checkouts)
            {
                var with = (YamlMappingNode)Get(checkout, "with")!;
                var reference = ((YamlScalarNode)Get(with, "ref")!).Value!;
                var path = (Get(with, "path") as YamlScalarNode)?.Value;
                ((YamlScalarNode)Get(with, "persist-credentials")!).Value.Should().Be("false");
                if (path is null)
                {
                    reference.Should().Be("${{ github.event.repository.default_branch }}", $"job {name} builds wf from the default branch only");
                }
                else
                {
                    path.Should().Be("pr-head", "the pull request's head is checked out beside the code, as data");
                }
            }
        }
    }

    [Fact]
    public void The_plan_job_gets_no_secrets_and_the_run_trigger_is_a_new_comment_or_the_label()
    {
        var workflow = Load("experiment-pr.yml");
        var on = (YamlMappingNode)Get(workflow, "on")!;
        var jobs = Jobs(workflow).ToDictionary(j => j.Name, j => j.Job);

        Text(jobs["plan"]).Should().NotContain("secrets.");
        Text(Get(on, "issue_comment")!).Should().Contain("created").And.NotContain("edited");
        ((YamlScalarNode)Get(jobs["guard"], "if")!).Value.Should().Contain("startsWith(github.event.comment.body, '/run')").And.Contain("'run-experiment'");
    }
}
