using Workflows.Cli.Commands;

namespace Workflows.Cli.Tests;

/// <summary>Runs wf in-process with captured output, and finds the repository the tests run in.</summary>
internal static class CliHarness
{
    public static string Root { get; } = FindRoot();

    public static (int Exit, string Out, string Err) Wf(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exit = Program.Run(args, new CliContext(stdout, stderr, colour: false));
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static string FindRoot()
    {
        var d = AppContext.BaseDirectory;
        while (d is not null && !File.Exists(Path.Combine(d, "Workflows.sln")))
        {
            d = Path.GetDirectoryName(d);
        }

        return d ?? throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }
}
