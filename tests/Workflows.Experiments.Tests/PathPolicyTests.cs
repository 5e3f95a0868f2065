using System.Diagnostics;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

/// <summary>The path policy's rules one by one (the CLI-level hostile-input suite runs them through wf).</summary>
public sealed class PathPolicyTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("wf-paths-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string Make(params string[] parts)
    {
        var path = Path.Combine([root, .. parts]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "x");
        return path;
    }

    private static void Fifo(string path)
    {
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        mkfifo.WaitForExit();
    }

    [Fact]
    public void The_roots_of_an_experiment_are_its_repository_and_WF_DATA_ROOTS()
    {
        Directory.CreateDirectory(Path.Combine(root, "repo", ".git"));
        var experiment = Make("repo", "experiments", "deep", "x.yaml");
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);

        var plain = PathPolicy.ForExperiment(experiment, _ => null);
        var configured = PathPolicy.ForExperiment(experiment, v => v == PathPolicy.RootsVariable ? $"{data}:relative/ignored:" : null);

        plain.Roots.Should().Equal(FileKinds.RealPath(Path.Combine(root, "repo")));
        plain.Repository.Should().Be(plain.Roots[0]);
        configured.Roots.Should().Equal(FileKinds.RealPath(Path.Combine(root, "repo")), FileKinds.RealPath(data));
    }

    [Fact]
    public void Outside_any_repository_the_root_is_the_experiments_own_folder()
    {
        var experiment = Make("loose", "x.yaml");

        PathPolicy.ForExperiment(experiment, _ => null).Roots.Should().Equal(FileKinds.RealPath(Path.Combine(root, "loose")));
    }

    [Fact]
    public void Before_git_init_a_folder_with_workflows_is_the_repository_and_a_git_tree_wins_over_it()
    {
        Directory.CreateDirectory(Path.Combine(root, "scaffold", "workflows"));
        var experiment = Make("scaffold", "experiments", "x.yaml");
        Directory.CreateDirectory(Path.Combine(root, "scaffold", "experiments", "workflows")); // nearer: it can only narrow

        PathPolicy.ForExperiment(experiment, _ => null).Repository.Should().Be(FileKinds.RealPath(Path.Combine(root, "scaffold", "experiments")),
            "the nearest folder with workflows/ counts");
        Directory.Delete(Path.Combine(root, "scaffold", "experiments", "workflows"));
        PathPolicy.ForExperiment(experiment, _ => null).Repository.Should().Be(FileKinds.RealPath(Path.Combine(root, "scaffold")));
        Directory.CreateDirectory(Path.Combine(root, "scaffold", "experiments", ".git"));
        PathPolicy.ForExperiment(experiment, _ => null).Repository.Should().Be(FileKinds.RealPath(Path.Combine(root, "scaffold", "experiments")),
            "a git working tree is the repository first");
    }

    [Fact]
    public void Containment_is_judged_after_links_and_for_paths_that_do_not_exist_yet()
    {
        var inside = Make("repo", "data", "a.jsonl");
        var secret = Make("outside", "secret");
        File.CreateSymbolicLink(Path.Combine(root, "repo", "data", "link.jsonl"), secret);
        Directory.CreateSymbolicLink(Path.Combine(root, "repo", "data", "dirlink"), Path.Combine(root, "outside"));
        var policy = new PathPolicy([Path.Combine(root, "repo")]);

        policy.Check(inside, PathUse.File).Problem.Should().BeNull();
        policy.Check(Path.Combine(root, "repo", "data", "later.jsonl"), PathUse.File).Should().Match<PathCheck>(c => c.Problem == null && !c.Exists);
        policy.Check(Path.Combine(root, "repo", "data", "link.jsonl"), PathUse.File).Problem!.Message.Should().StartWith("resolves (through a symbolic link) to a place outside");
        policy.Check(Path.Combine(root, "repo", "data", "dirlink", "not-there-yet"), PathUse.File).Problem.Should().NotBeNull("a missing file below a link out still resolves out");
        policy.Check(Path.Combine(root, "repo", "..", "outside", "secret"), PathUse.File).Problem!.Message.Should().StartWith("is outside");
        PathPolicy.KindsOnly.Check(secret, PathUse.File).Problem.Should().BeNull("without roots only the kind rules apply");
    }

    [Theory]
    [InlineData("/dev/null", "is under /dev")]
    [InlineData("/proc/self/status", "under /proc")]
    [InlineData("/sys/kernel", "is under /sys")]
    public void Virtual_file_systems_are_refused_whatever_the_roots(string path, string expected) =>
        new PathPolicy(["/"]).Check(path, PathUse.FileOrFolder).Problem!.Message.Should().Contain(expected);

    [Fact]
    public void Fifos_are_refused_without_opening_them()
    {
        var fifo = Path.Combine(root, "pipe.jsonl");
        Fifo(fifo);
        var watch = Stopwatch.StartNew();

        var check = PathPolicy.KindsOnly.Check(fifo, PathUse.File);
        var open = () => PathPolicy.KindsOnly.OpenRead(fifo);

        check.Kind.Should().Be(FileKind.Fifo);
        check.Problem!.Message.Should().Contain("FIFO");
        open.Should().Throw<UnsafePathException>().WithMessage("*FIFO*");
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(2), "a FIFO's open would block until a writer comes");
    }

    [Fact]
    public void A_folder_walk_refuses_links_out_and_fifos_and_never_follows_links_to_folders()
    {
        var folder = Path.Combine(root, "repo", "corpus");
        Make("repo", "corpus", "a.jsonl");
        Make("repo", "corpus", "sub", "b.jsonl");
        Directory.CreateSymbolicLink(Path.Combine(folder, "loop"), folder);
        var policy = new PathPolicy([Path.Combine(root, "repo")]);

        policy.Invoking(p => p.EnumerateFiles(folder, "*.jsonl").ToList()).Should().NotThrow("a link to a folder that does not match is skipped, never walked");
        policy.EnumerateFiles(folder, "*.jsonl").Select(Path.GetFileName).Should().Equal("a.jsonl", "b.jsonl");

        File.CreateSymbolicLink(Path.Combine(folder, "c.jsonl"), Make("outside", "c.jsonl"));
        policy.Invoking(p => p.EnumerateFiles(folder).ToList()).Should().Throw<UnsafePathException>().WithMessage("*c.jsonl' resolves (through a symbolic link) to a place outside*");
        File.Delete(Path.Combine(folder, "c.jsonl"));
        Fifo(Path.Combine(folder, "d.jsonl"));
        policy.Invoking(p => p.EnumerateFiles(folder).ToList()).Should().Throw<UnsafePathException>().WithMessage("*d.jsonl' is a FIFO*");
    }

    [Fact]
    public void Source_files_must_be_regular_and_reached_without_links()
    {
        Directory.CreateDirectory(Path.Combine(root, "repo", ".git"));
        var real = Make("repo", "experiments", "real.yaml");
        var link = Path.Combine(root, "repo", "experiments", "link.yaml");
        File.CreateSymbolicLink(link, real);
        Directory.CreateSymbolicLink(Path.Combine(root, "repo", "linked"), Path.Combine(root, "repo", "experiments"));
        var fifo = Path.Combine(root, "repo", "experiments", "fifo.yaml");
        Fifo(fifo);

        PathPolicy.CheckSourceFile(real).Should().BeNull();
        PathPolicy.CheckSourceFile(link).Should().StartWith("is a symbolic link");
        PathPolicy.CheckSourceFile(Path.Combine(root, "repo", "linked", "real.yaml")).Should().Contain("symbolically linked folder");
        PathPolicy.CheckSourceFile(fifo).Should().Contain("FIFO");
        PathPolicy.CheckSourceFile("/proc/self/environ").Should().Contain("/proc");
    }

    [Fact]
    public async Task The_scoped_policy_flows_into_what_the_scope_starts_and_is_restored_after()
    {
        var policy = new PathPolicy([root]);

        PathPolicy.Current.Should().BeSameAs(PathPolicy.KindsOnly);
        PathPolicy? seenOnThread = null;
        using (PathPolicy.Use(policy))
        {
            var thread = new Thread(() => seenOnThread = PathPolicy.Current);
            thread.Start();
            thread.Join();
            (await Task.Run(() => PathPolicy.Current)).Should().BeSameAs(policy);
        }

        seenOnThread.Should().BeSameAs(policy);
        PathPolicy.Current.Should().BeSameAs(PathPolicy.KindsOnly);
    }

    [Fact]
    public void Messages_show_paths_escaped_and_cut()
    {
        PathPolicy.Show("a\u001b[31m\nb").Should().Be("'a\\e[31m\\nb'");
        PathPolicy.Show(new string('p', 500)).Length.Should().BeLessThan(260);
    }
}
