using System.Text.Json;
using Octokit;
using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Doctor;

public enum FindingLevel
{
    /// <summary>The setting is as the trust model needs it.</summary>
    Ok,

    /// <summary>Allowed, but weaker than recommended.</summary>
    Warn,

    /// <summary>The trust model does not hold until this is fixed: <c>wf pr doctor</c> exits 1.</summary>
    Fail,

    /// <summary>The token may not read this setting; it is not known to be right.</summary>
    Unknown,
}

/// <summary>One checked repository setting: what was found and how to fix it.</summary>
public sealed record Finding(FindingLevel Level, string Setting, string Message, string? Fix = null)
{
    public override string ToString() => Fix is null ? $"{Level.ToString().ToLowerInvariant(),-7} {Setting}: {Message}" : $"{Level.ToString().ToLowerInvariant(),-7} {Setting}: {Message}\n        fix: {Fix}";
}

/// <summary>The deployment-branch rule of an environment, as the environments API reports it.</summary>
public enum BranchRule
{
    /// <summary><c>deployment_branch_policy: null</c>: any branch (and a pull request's merge ref) may use the environment.</summary>
    AnyBranch,

    /// <summary><c>protected_branches: true</c>: branches with protection rules.</summary>
    ProtectedBranches,

    /// <summary><c>custom_branch_policies: true</c>: the listed name patterns.</summary>
    Custom,
}

/// <summary>An environment's protection: branch rule (with the custom patterns), required reviewers, self-review.</summary>
public sealed record EnvironmentProtection(
    string Name,
    BranchRule Branches,
    IReadOnlyList<string> BranchPatterns,
    IReadOnlyList<string> Reviewers,
    bool PreventSelfReview)
{
    /// <summary>Only <paramref name="defaultBranch"/> may deploy: a custom policy of exactly that one branch name.</summary>
    public bool OnlyDefaultBranch(string defaultBranch) =>
        Branches == BranchRule.Custom && BranchPatterns.Count == 1 && BranchPatterns[0] == defaultBranch;
}

/// <summary>
/// Reads the repository settings the GitOps trust model depends on through the REST API, and says what is missing
/// (<c>wf pr doctor</c>). The workflows only keep secrets from pull-request code if GitHub enforces these: the
/// environment that holds the secrets may be used from the default branch only (a <c>pull_request</c> run uses the pull
/// request's own workflow file, and a <c>workflow_dispatch</c> the dispatched branch's), the secrets live in that
/// environment and not in the repository, the default branch only changes through reviewed pull requests, and the
/// default workflow token is read-only. docs/gitops.md has the threat model.
/// </summary>
public sealed class RepositoryDoctor(GitHubRepoClient github)
{
    public const string DefaultEnvironment = "experiment-runs";
    public const string DefaultSecret = "WF_STORAGE_CONNECTION_STRING";
    public const string ArchiveIndexVariable = "WF_ARCHIVE_INDEX_URL";
    public const string ArchiveCheckVariable = "WF_ARCHIVE_CHECK";
    public const string OtherApproverVariable = "WF_REQUIRE_OTHER_APPROVER";

    /// <summary>The job name of the archive-immutability check (required status checks name jobs).</summary>
    public const string ArchiveCheckJob = "archive-check";

    private string Repo => $"repos/{github.Repository.Owner}/{github.Repository.Name}";

    /// <summary>GET environments/{name} (and its deployment-branch-policies when custom); null when it does not exist.</summary>
    public async Task<EnvironmentProtection?> ReadEnvironmentAsync(string environment)
    {
        using var json = await github.GetJsonAsync($"{Repo}/environments/{Uri.EscapeDataString(environment)}").ConfigureAwait(false);
        if (json is null)
        {
            return null;
        }

        var root = json.RootElement;
        var branches = BranchRule.AnyBranch;
        if (root.TryGetProperty("deployment_branch_policy", out var policy) && policy.ValueKind == JsonValueKind.Object)
        {
            branches = Bool(policy, "custom_branch_policies") ? BranchRule.Custom : Bool(policy, "protected_branches") ? BranchRule.ProtectedBranches : BranchRule.AnyBranch;
        }

        var reviewers = new List<string>();
        var preventSelfReview = false;
        if (root.TryGetProperty("protection_rules", out var rules) && rules.ValueKind == JsonValueKind.Array)
        {
            foreach (var rule in rules.EnumerateArray().Where(r => Text(r, "type") == "required_reviewers"))
            {
                preventSelfReview |= Bool(rule, "prevent_self_review");
                if (rule.TryGetProperty("reviewers", out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    reviewers.AddRange(list.EnumerateArray().Select(r => r.TryGetProperty("reviewer", out var who)
                        ? Text(who, "login") ?? Text(who, "slug") ?? Text(who, "name") ?? "?"
                        : "?"));
                }
            }
        }

        var patterns = new List<string>();
        if (branches == BranchRule.Custom)
        {
            using var list = await github.GetJsonAsync($"{Repo}/environments/{Uri.EscapeDataString(environment)}/deployment-branch-policies",
                new Dictionary<string, string> { ["per_page"] = "100" }).ConfigureAwait(false);
            if (list?.RootElement.TryGetProperty("branch_policies", out var items) == true)
            {
                patterns.AddRange(items.EnumerateArray()
                    .Select(p => (Text(p, "type") ?? "branch") == "tag" ? "tag:" + Text(p, "name") : Text(p, "name") ?? "")
                    .Order(StringComparer.Ordinal));
            }
        }

        return new EnvironmentProtection(environment, branches, patterns, reviewers, preventSelfReview);
    }

    /// <summary>Every check, in the order the docs list them.</summary>
    public async Task<IReadOnlyList<Finding>> CheckAsync(string environment = DefaultEnvironment, string secret = DefaultSecret)
    {
        var findings = new List<Finding>();
        var defaultBranch = await github.GetDefaultBranchAsync().ConfigureAwait(false);
        findings.Add(new Finding(FindingLevel.Ok, "default branch", $"'{defaultBranch}': the code and workflow files that hold secrets come from here"));

        findings.AddRange(await Guard(() => EnvironmentFindingsAsync(environment, defaultBranch), $"environment '{environment}'").ConfigureAwait(false));
        findings.AddRange(await Guard(() => SecretFindingsAsync(environment, secret), "secrets").ConfigureAwait(false));
        findings.AddRange(await Guard(() => BranchFindingsAsync(defaultBranch), $"branch '{defaultBranch}'").ConfigureAwait(false));
        findings.AddRange(await Guard(WorkflowTokenFindingsAsync, "workflow token").ConfigureAwait(false));
        findings.AddRange(await Guard(VariableFindingsAsync, "variables").ConfigureAwait(false));
        return findings;
    }

    private async Task<IEnumerable<Finding>> EnvironmentFindingsAsync(string environment, string defaultBranch)
    {
        var setting = $"environment '{environment}'";
        var env = await ReadEnvironmentAsync(environment).ConfigureAwait(false);
        if (env is null)
        {
            return [new Finding(FindingLevel.Fail, setting, "does not exist: the submit, archive and rerun jobs name it to get the storage secret",
                $"Settings > Environments > New environment '{environment}', with deployment branches limited to '{defaultBranch}'")];
        }

        var findings = new List<Finding>();
        findings.Add(env.Branches switch
        {
            BranchRule.AnyBranch => new Finding(FindingLevel.Fail, $"{setting} deployment branches",
                "any branch may use it: a same-repository pull request (pull_request runs its own workflow file) or a dispatch on any branch can read the secrets",
                $"Deployment branches and tags > Selected branches and tags > add exactly '{defaultBranch}'"),
            BranchRule.ProtectedBranches => new Finding(FindingLevel.Warn, $"{setting} deployment branches",
                "any protected branch may use it; only the default branch's workflows should",
                $"Selected branches and tags > exactly '{defaultBranch}'"),
            _ when env.OnlyDefaultBranch(defaultBranch) => new Finding(FindingLevel.Ok, $"{setting} deployment branches", $"only '{defaultBranch}'"),
            _ => new Finding(FindingLevel.Fail, $"{setting} deployment branches",
                $"the patterns [{string.Join(", ", env.BranchPatterns)}] allow more than '{defaultBranch}' (or not it): a branch matching them can read the secrets",
                $"leave exactly one rule: the branch '{defaultBranch}'"),
        });
        findings.Add(env.Reviewers.Count > 0
            ? new Finding(FindingLevel.Ok, $"{setting} required reviewers", $"{string.Join(", ", env.Reviewers)}{(env.PreventSelfReview ? " (self-review prevented)" : "")}")
            : new Finding(FindingLevel.Warn, $"{setting} required reviewers", "none: a /run by any writer reaches the secrets without a second person",
                "add required reviewers (and 'Prevent self-review'), or set WF_REQUIRE_OTHER_APPROVER=true"));
        if (env.Reviewers.Count > 0 && !env.PreventSelfReview)
        {
            findings.Add(new Finding(FindingLevel.Warn, $"{setting} self-review", "a reviewer may approve their own run", "tick 'Prevent self-review'"));
        }

        return findings;
    }

    private async Task<IEnumerable<Finding>> SecretFindingsAsync(string environment, string secret)
    {
        var findings = new List<Finding>();
        using (var repoSecrets = await github.GetJsonAsync($"{Repo}/actions/secrets", new Dictionary<string, string> { ["per_page"] = "100" }).ConfigureAwait(false))
        {
            var names = Names(repoSecrets, "secrets");
            findings.Add(names.Contains(secret)
                ? new Finding(FindingLevel.Fail, $"repository secret {secret}",
                    "is a repository secret: every workflow run of a same-repository branch can read it, environment or not",
                    $"delete the repository secret and keep {secret} in the '{environment}' environment only")
                : new Finding(FindingLevel.Ok, $"repository secret {secret}", "not a repository secret (environment only)"));
        }

        using var envSecrets = await github.GetJsonAsync($"{Repo}/environments/{Uri.EscapeDataString(environment)}/secrets",
            new Dictionary<string, string> { ["per_page"] = "100" }).ConfigureAwait(false);
        findings.Add(Names(envSecrets, "secrets").Contains(secret)
            ? new Finding(FindingLevel.Ok, $"environment secret {secret}", $"set in '{environment}'")
            : new Finding(FindingLevel.Fail, $"environment secret {secret}", $"not set in '{environment}': runs cannot be submitted", $"add {secret} to the '{environment}' environment's secrets"));
        return findings;
    }

    private async Task<IEnumerable<Finding>> BranchFindingsAsync(string branch)
    {
        var setting = $"branch '{branch}'";
        var approvals = 0;
        var checks = new HashSet<string>(StringComparer.Ordinal);
        var sources = new List<string>();
        using (var rules = await github.GetJsonAsync($"{Repo}/rules/branches/{Uri.EscapeDataString(branch)}").ConfigureAwait(false))
        {
            foreach (var rule in rules?.RootElement.EnumerateArray() ?? Enumerable.Empty<JsonElement>())
            {
                var type = Text(rule, "type");
                if (type == "pull_request")
                {
                    sources.Add("ruleset");
                    if (rule.TryGetProperty("parameters", out var p) && p.TryGetProperty("required_approving_review_count", out var n))
                    {
                        approvals = Math.Max(approvals, n.GetInt32());
                    }
                }

                if (type == "required_status_checks" && rule.TryGetProperty("parameters", out var sc) && sc.TryGetProperty("required_status_checks", out var list))
                {
                    checks.UnionWith(list.EnumerateArray().Select(c => Text(c, "context") ?? ""));
                }
            }
        }

        using (var protection = await github.GetJsonAsync($"{Repo}/branches/{Uri.EscapeDataString(branch)}/protection").ConfigureAwait(false))
        {
            if (protection?.RootElement is { } p)
            {
                if (p.TryGetProperty("required_pull_request_reviews", out var reviews) && reviews.ValueKind == JsonValueKind.Object)
                {
                    approvals = Math.Max(approvals, reviews.TryGetProperty("required_approving_review_count", out var n) ? n.GetInt32() : 0);
                    sources.Add("branch protection");
                }

                if (p.TryGetProperty("required_status_checks", out var sc) && sc.ValueKind == JsonValueKind.Object)
                {
                    if (sc.TryGetProperty("contexts", out var contexts))
                    {
                        checks.UnionWith(contexts.EnumerateArray().Select(c => c.GetString() ?? ""));
                    }

                    if (sc.TryGetProperty("checks", out var named))
                    {
                        checks.UnionWith(named.EnumerateArray().Select(c => Text(c, "context") ?? ""));
                    }
                }
            }
        }

        var findings = new List<Finding>
        {
            approvals > 0
                ? new Finding(FindingLevel.Ok, $"{setting} reviews", $"pull requests need {approvals} approving review(s) ({string.Join(", ", sources.Distinct())})")
                : new Finding(FindingLevel.Fail, $"{setting} reviews",
                    "changes do not need an approving review: whoever can push to it decides what the secret-holding jobs run",
                    "a ruleset (or branch protection) on the default branch: require a pull request with at least 1 approval"),
            checks.Any(c => c == ArchiveCheckJob || c.EndsWith("/ " + ArchiveCheckJob, StringComparison.Ordinal))
                ? new Finding(FindingLevel.Ok, $"{setting} required checks", $"'{ArchiveCheckJob}' is required")
                : new Finding(FindingLevel.Warn, $"{setting} required checks",
                    $"'{ArchiveCheckJob}' is not a required status check: a pull request that edits an archived experiment can still be merged",
                    $"require the status check '{ArchiveCheckJob}' (experiment-pr.yml)"),
        };
        return findings;
    }

    private async Task<IEnumerable<Finding>> WorkflowTokenFindingsAsync()
    {
        using var json = await github.GetJsonAsync($"{Repo}/actions/permissions/workflow").ConfigureAwait(false);
        if (json is null)
        {
            return [new Finding(FindingLevel.Unknown, "default workflow token", "not reported by this server")];
        }

        var permissions = Text(json.RootElement, "default_workflow_permissions");
        var approves = Bool(json.RootElement, "can_approve_pull_request_reviews");
        return
        [
            permissions == "read"
                ? new Finding(FindingLevel.Ok, "default workflow token", "read-only (each job names what it needs)")
                : new Finding(FindingLevel.Warn, "default workflow token", $"'{permissions}' by default: a workflow without 'permissions:' gets a write token",
                    "Settings > Actions > General > Workflow permissions > Read repository contents"),
            approves
                ? new Finding(FindingLevel.Warn, "workflow approvals", "workflows may approve pull requests (a bot approval could satisfy a review rule)",
                    "untick 'Allow GitHub Actions to create and approve pull requests'")
                : new Finding(FindingLevel.Ok, "workflow approvals", "workflows cannot approve pull requests"),
        ];
    }

    private async Task<IEnumerable<Finding>> VariableFindingsAsync()
    {
        var findings = new List<Finding>();
        using (var index = await github.GetJsonAsync($"{Repo}/actions/variables/{ArchiveIndexVariable}").ConfigureAwait(false))
        using (var check = await github.GetJsonAsync($"{Repo}/actions/variables/{ArchiveCheckVariable}").ConfigureAwait(false))
        {
            var off = check is not null && Text(check.RootElement, "value") == "off";
            findings.Add(index is not null
                ? new Finding(FindingLevel.Ok, ArchiveIndexVariable, "set: the archive check reads the public index")
                : off
                    ? new Finding(FindingLevel.Warn, ArchiveIndexVariable, $"unset and {ArchiveCheckVariable}=off: archived experiments are not protected from edits")
                    : new Finding(FindingLevel.Warn, ArchiveIndexVariable, "unset: the archive check fails every experiment pull request until it is set",
                        $"set it to the URL 'wf archive' prints, or {ArchiveCheckVariable}=off to run without the check"));
        }

        using (var twoPerson = await github.GetJsonAsync($"{Repo}/actions/variables/{OtherApproverVariable}").ConfigureAwait(false))
        {
            findings.Add(twoPerson is not null && Text(twoPerson.RootElement, "value") == "true"
                ? new Finding(FindingLevel.Ok, OtherApproverVariable, "true: a pull request's author cannot ask for its run")
                : new Finding(FindingLevel.Ok, OtherApproverVariable, "off: an author with write access may /run their own pull request (experiments can opt in with gitops.require_other_approver)"));
        }

        return findings;
    }

    private static async Task<IEnumerable<Finding>> Guard(Func<Task<IEnumerable<Finding>>> check, string setting)
    {
        try
        {
            return await check().ConfigureAwait(false);
        }
        catch (ApiException e) when (e.StatusCode is System.Net.HttpStatusCode.Forbidden or System.Net.HttpStatusCode.Unauthorized)
        {
            return [new Finding(FindingLevel.Unknown, setting, $"the token may not read it ({(int)e.StatusCode})",
                "run wf pr doctor with an admin's token (fine-grained: Administration, Actions, Environments, Secrets and Variables: read)")];
        }
    }

    private static HashSet<string> Names(JsonDocument? json, string property) =>
        json?.RootElement.TryGetProperty(property, out var items) == true
            ? items.EnumerateArray().Select(i => Text(i, "name") ?? "").ToHashSet(StringComparer.Ordinal)
            : [];

    private static string? Text(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool Bool(JsonElement e, string property) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.True;
}
