using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary>Loads the experiment file a command was given, with the repository's workflows/ for the template check.</summary>
public static class ExperimentFile
{
    /// <summary>Returns the spec, or prints every error of the file and returns null (the command exits 1).</summary>
    public static ExperimentSpec? Load(CliContext cli, string path)
    {
        var loaded = ExperimentLoader.LoadFile(path, new LoadOptions(WorkflowsDirectory: RepositoryLayout.FindWorkflowsDirectory(path)));
        if (loaded.IsValid)
        {
            return loaded.Spec;
        }

        DiagnosticPrinter.Print(cli, loaded.Diagnostics);
        return null;
    }
}
