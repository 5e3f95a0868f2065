namespace Workflows.GitOps.Tests;

/// <summary>
/// Golden files under Golden/ in the source tree. A mismatch fails and writes NAME.actual.md beside the golden;
/// WF_UPDATE_GOLDEN=1 rewrites the goldens (then review the diff before committing).
/// </summary>
public static class Golden
{
    public static string Directory { get; } = FindDirectory();

    public static void Verify(string name, string actual)
    {
        var path = Path.Combine(Directory, name);
        if (Environment.GetEnvironmentVariable("WF_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(path, actual);
        }

        File.Exists(path).Should().BeTrue($"golden {path} exists (run with WF_UPDATE_GOLDEN=1 to create it)");
        var expected = File.ReadAllText(path).Replace("\r\n", "\n", StringComparison.Ordinal);
        if (expected != actual)
        {
            File.WriteAllText(Path.ChangeExtension(path, ".actual.md"), actual);
        }

        actual.Should().Be(expected, $"the rendering should match {path}");
    }

    private static string FindDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Workflows.GitOps.Tests", "Golden");
            if (System.IO.Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Workflows.GitOps.Tests/Golden not found above " + AppContext.BaseDirectory);
    }
}
