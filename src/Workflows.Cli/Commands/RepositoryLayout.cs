namespace Workflows.Cli.Commands;

/// <summary>Finds the repository folders (workflows/, experiments/) from a file inside the repository.</summary>
public static class RepositoryLayout
{
    /// <summary>The nearest ancestor of <paramref name="start"/> that has a <c>workflows/</c> folder.</summary>
    public static string? FindWorkflowsDirectory(string start)
    {
        var directory = Directory.Exists(start) ? Path.GetFullPath(start) : Path.GetDirectoryName(Path.GetFullPath(start));
        while (!string.IsNullOrEmpty(directory))
        {
            var candidate = Path.Combine(directory, "workflows");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }

            directory = Path.GetDirectoryName(directory);
        }

        return null;
    }

    public static bool IsWorkflowTemplate(string file) =>
        Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(file))) == "workflows";
}
