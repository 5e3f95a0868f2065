using Workflows.Artifacts;
using Workflows.Engine;
using Workflows.GitOps.Publishing;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.GitOps;

/// <summary>How the CLI connects the engine to GitHub: only when a token is configured, so the engine never needs one.</summary>
public static class GitOpsWiring
{
    /// <summary>
    /// Adds the GitHub results hook to a worker's services when GITHUB_TOKEN is set (API URL from WF_GITHUB_API_URL or
    /// GITHUB_API_URL; report files published per WF_REPORTS_*). Returns whether it did.
    /// </summary>
    public static bool AddRunFinishedHook(EngineServices services, StorageConnection connection, TextWriter? log = null, Func<string, string?>? env = null)
    {
        if (CreateHook(services.Store, connection, env) is not { } hook)
        {
            return false;
        }

        services.RunFinishedHooks.Add(hook.Hook);
        log?.WriteLine($"GitHub reporting on: finished runs of pull requests update their PR comment and commit status (reports in container '{hook.Publisher.Container.Name}', {hook.Publisher.Access})");
        return true;
    }

    /// <summary>The GitHub results hook, or null when GITHUB_TOKEN is not set.</summary>
    public static (GitHubRunFinishedHook Hook, ReportPublisher Publisher)? CreateHook(Workflows.Artifacts.Store.IArtifactStore store, StorageConnection connection, Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        if (env("GITHUB_TOKEN") is not { Length: > 0 } token)
        {
            return null;
        }

        var url = env("WF_GITHUB_API_URL") ?? env("GITHUB_API_URL");
        var publisher = new ReportPublisher(connection, ReportPublishingOptions.FromEnvironment(env));
        return (new GitHubRunFinishedHook(store, publisher, token, string.IsNullOrWhiteSpace(url) ? null : new Uri(url), env("WF_GITHUB_BOT_LOGIN")), publisher);
    }
}
