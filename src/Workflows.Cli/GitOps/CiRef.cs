using System.Text.Json;

namespace Workflows.Cli.GitOps;

/// <summary>
/// Where a GitHub Actions job runs from. The jobs that hold the engine's secrets (<c>wf pr submit</c>, <c>wf rerun</c>,
/// <c>wf archive</c>) must run the default branch's code and workflow file: <c>issue_comment</c> and <c>workflow_run</c>
/// always do, but a <c>pull_request</c> run uses the pull request's merge commit and a <c>workflow_dispatch</c> the
/// dispatched branch. So before anything touches a secret they compare <c>GITHUB_REF</c> with the event's
/// <c>repository.default_branch</c> (from <c>GITHUB_EVENT_PATH</c>, GitHub's own payload). A workflow edited on a branch
/// can skip this check, which is why the environment holding the secrets must also be limited to the default branch
/// (<c>wf pr doctor</c> checks that): this is the second line, and it catches a misconfigured workflow at once.
/// </summary>
public static class CiRef
{
    /// <summary>Null when not under GitHub Actions or on the default branch; else why the job must stop.</summary>
    public static string? Problem(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        if (env("GITHUB_ACTIONS") != "true")
        {
            return null;
        }

        var gitRef = env("GITHUB_REF") ?? "";
        var defaultBranch = DefaultBranch(env("GITHUB_EVENT_PATH"));
        if (defaultBranch is null)
        {
            return "cannot tell the default branch: GITHUB_EVENT_PATH holds no repository.default_branch, so this job cannot show it runs the default branch's code";
        }

        return gitRef == "refs/heads/" + defaultBranch
            ? null
            : $"this job runs from {Experiments.Validation.Untrusted.Quote(gitRef, 120)}, not the default branch '{defaultBranch}': jobs that hold the engine's secrets run only the default branch's code and workflows (a pull request's or another branch's workflow file is not trusted)";
    }

    private static string? DefaultBranch(string? eventPath)
    {
        if (string.IsNullOrEmpty(eventPath) || !File.Exists(eventPath))
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(File.ReadAllBytes(eventPath));
            return json.RootElement.TryGetProperty("repository", out var repo) && repo.TryGetProperty("default_branch", out var branch)
                ? branch.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
