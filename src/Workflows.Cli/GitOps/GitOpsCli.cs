using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;
using Workflows.Cli.Commands;
using Workflows.Engine;
using Workflows.GitOps.Publishing;

namespace Workflows.Cli.GitOps;

/// <summary>Shared by the GitOps commands: the engine client with its storage connection, and the report publisher.</summary>
internal static class GitOpsCli
{
    public static async Task<int> WithEngine(CliContext cli, string hub, Func<EngineClient, StorageConnection, Task<int>> action, CancellationToken ct)
    {
        await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
        var client = await EngineClient.ConnectAsync(storage.Connection, EngineCli.Options(hub));
        return await action(client, storage.Connection);
    }

    public static ReportPublisher Publisher(StorageConnection connection) => new(connection, ReportPublishingOptions.FromEnvironment());

    /// <summary>The workflow templates of this checkout (the default branch's in CI): ./workflows, or the nearest above.</summary>
    public static string WorkflowsDirectory(string? given) =>
        given ?? RepositoryLayout.FindWorkflowsDirectory(Directory.GetCurrentDirectory())
        ?? throw new DirectoryNotFoundException("no workflows/ folder in or above the current directory: pass --workflows-dir");

    /// <summary>A path as the repository names it: relative to the folder holding workflows/, with '/' separators.</summary>
    public static string RepositoryPath(string file, string workflowsDirectory) =>
        Path.GetRelativePath(Path.GetDirectoryName(Path.GetFullPath(workflowsDirectory))!, Path.GetFullPath(file)).Replace('\\', '/');
}
