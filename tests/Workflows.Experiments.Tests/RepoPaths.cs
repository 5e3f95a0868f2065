namespace Workflows.Experiments.Tests;

/// <summary>Finds folders of the repository from the test output directory.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Experiments => Path.Combine(Root, "experiments");

    public static string Workflows => Path.Combine(Root, "workflows");

    public static string TestData(string folder) => Path.Combine(Root, "tests", "Workflows.Experiments.Tests", folder);

    private static string FindRoot()
    {
        var directory = AppContext.BaseDirectory;
        while (directory is not null && !File.Exists(Path.Combine(directory, "Workflows.sln")))
        {
            directory = Path.GetDirectoryName(directory);
        }

        return directory ?? throw new InvalidOperationException("Workflows.sln not found above " + AppContext.BaseDirectory);
    }
}
