using Workflows.Engine;
using Workflows.Evaluation.Needle;
using Workflows.Experiments.Paths;

namespace Workflows.Cli.Commands;

/// <summary>
/// The path policy of a long-running worker process (<c>wf worker</c>, <c>wf gpu-agent</c>): the domain readers it calls
/// may open files only inside <c>WF_DATA_ROOTS</c> (else the working folder), its cache and scratch folder, the shipped
/// haystack, and the folder of the operator's LLaMA-2 tokenizer. Experiment paths were checked against the experiment's
/// repository when the run was submitted; this is the second line, on the machine that holds the credentials.
/// </summary>
public static class WorkerPaths
{
    public static PathPolicy Policy(EngineOptions options)
    {
        var folders = new List<string> { Path.GetFullPath(options.CacheDirectory), Haystack.DefaultDirectory() };
        Directory.CreateDirectory(folders[0]);

        if (Environment.GetEnvironmentVariable(TokenizerResolver.LlamaEnvironmentVariable) is { Length: > 0 } tokenizer
            && Path.GetDirectoryName(Path.GetFullPath(tokenizer)) is { } tokenizerFolder)
        {
            folders.Add(tokenizerFolder);
        }

        return PathPolicy.ForWorker(folders);
    }
}
