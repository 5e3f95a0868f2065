using Octokit;
using Workflows.GitOps.Comments;

namespace Workflows.GitOps.GitHub;

/// <summary>Where the API is and who we are: the base URL (github.com, GitHub Enterprise, or a local test server) and a token.</summary>
/// <param name="BotLogin">The account the bot writes as when it is not a GitHub App (WF_GITHUB_BOT_LOGIN); null: any
/// <c>[bot]</c> account's marked comment is the bot's (see <see cref="GitHubRepoClient.FindStickyCommentAsync"/>).</param>
public sealed record GitHubSettings(RepoRef Repository, string Token, Uri? BaseUrl = null, string? BotLogin = null)
{
    /// <summary>
    /// From the variables GitHub Actions sets: GITHUB_TOKEN, GITHUB_REPOSITORY (owner/name) and GITHUB_API_URL
    /// (https://api.github.com, or https://HOST/api/v3 on Enterprise). WF_GITHUB_API_URL overrides the URL (tests, a
    /// proxy). <paramref name="repository"/> overrides GITHUB_REPOSITORY. WF_GITHUB_BOT_LOGIN names the bot's account.
    /// </summary>
    public static GitHubSettings FromEnvironment(string? repository = null, Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        var token = env("GITHUB_TOKEN");
        if (string.IsNullOrWhiteSpace(token))
        {
            throw new InvalidOperationException("GITHUB_TOKEN is not set: the GitHub API needs a token (in Actions: env: GITHUB_TOKEN: ${{ github.token }})");
        }

        var repo = repository ?? env("GITHUB_REPOSITORY")
            ?? throw new InvalidOperationException("no repository: pass --repo owner/name or set GITHUB_REPOSITORY");
        var url = env("WF_GITHUB_API_URL") ?? env("GITHUB_API_URL");
        var bot = env("WF_GITHUB_BOT_LOGIN");
        return new GitHubSettings(RepoRef.Parse(repo), token, string.IsNullOrWhiteSpace(url) ? null : new Uri(url), string.IsNullOrWhiteSpace(bot) ? null : bot);
    }
}

/// <summary>
/// The GitHub REST calls the experiment workflow makes, for one repository, through Octokit. Every method maps to one
/// documented endpoint (named in its comment) except the sticky-comment upsert, which lists then creates or updates.
/// </summary>
public sealed class GitHubRepoClient
{
    private static readonly ApiOptions AllPages = new() { PageSize = 100 };

    private static readonly HttpClient Http = new();

    private readonly IGitHubClient client;
    private readonly string token;
    private readonly string userAgent;

    public GitHubRepoClient(GitHubSettings settings)
    {
        Repository = settings.Repository;
        BotLogin = settings.BotLogin;
        token = settings.Token;
        var product = new ProductHeaderValue("wf-gitops", typeof(GitHubRepoClient).Assembly.GetName().Version?.ToString() ?? "0");

        // Octokit maps github.com to api.github.com and any other host to HOST/api/v3/ (Enterprise's layout, which the
        // local test server serves too).
        var octokit = settings.BaseUrl is null ? new GitHubClient(product) : new GitHubClient(product, settings.BaseUrl);
        octokit.Credentials = new Credentials(settings.Token);
        client = octokit;
        userAgent = $"{product.Name}/{product.Version}";
    }

    public RepoRef Repository { get; }

    /// <summary>The bot's account from the settings (WF_GITHUB_BOT_LOGIN), used when a call names none.</summary>
    public string? BotLogin { get; }

    private string Owner => Repository.Owner;

    private string Name => Repository.Name;

    /// <summary>GET /repos/{o}/{r}/issues/{n}/comments (every page, 100 per page), oldest first.</summary>
    public async Task<IReadOnlyList<IssueCommentInfo>> ListCommentsAsync(int pullRequest)
    {
        var comments = await client.Issue.Comment.GetAllForIssue(Owner, Name, pullRequest, AllPages).ConfigureAwait(false);
        return comments.Select(ToInfo).ToList();
    }

    /// <summary>POST /repos/{o}/{r}/issues/{n}/comments with {"body": ...}.</summary>
    public async Task<IssueCommentInfo> CreateCommentAsync(int pullRequest, string body) =>
        ToInfo(await client.Issue.Comment.Create(Owner, Name, pullRequest, body).ConfigureAwait(false));

    /// <summary>PATCH /repos/{o}/{r}/issues/comments/{id} with {"body": ...}.</summary>
    public async Task<IssueCommentInfo> UpdateCommentAsync(long commentId, string body) =>
        ToInfo(await client.Issue.Comment.Update(Owner, Name, commentId, body).ConfigureAwait(false));

    /// <summary>
    /// The experiment's sticky comment (the first comment that starts with its marker, written by the bot), or null.
    /// The bot is <paramref name="botLogin"/> (WF_GITHUB_BOT_LOGIN) when given, else any GitHub App account (a login
    /// ending in <c>[bot]</c>, as <c>github-actions[bot]</c>): a person's comment that carries the marker is never taken
    /// for the bot's, so a pull request's author cannot plant sections (a forged result) that the bot would keep.
    /// </summary>
    public async Task<(IssueCommentInfo? Comment, IReadOnlyList<long> Duplicates)> FindStickyCommentAsync(int pullRequest, string experiment, string? botLogin = null)
    {
        botLogin ??= BotLogin;
        var mine = (await ListCommentsAsync(pullRequest).ConfigureAwait(false))
            .Where(c => CommentMarker.ExperimentOf(c.Body) == experiment)
            .Where(c => botLogin is null
                ? c.Author.EndsWith("[bot]", StringComparison.Ordinal)
                : string.Equals(c.Author, botLogin, StringComparison.OrdinalIgnoreCase))
            .OrderBy(c => c.CreatedAt).ThenBy(c => c.Id)
            .ToList();
        return (mine.FirstOrDefault(), mine.Skip(1).Select(c => c.Id).ToList());
    }

    /// <summary>
    /// Creates or updates the one comment of <paramref name="experiment"/>. <paramref name="render"/> gets the current
    /// body (null when there is none) and returns the new one, so a caller can keep sections it does not own.
    /// When several comments carry the marker (two jobs raced before either saw the other's), the oldest is updated
    /// and the others are reported in <see cref="StickyCommentResult.DuplicateIds"/>, never edited or deleted.
    /// An identical body is not sent again.
    /// </summary>
    public async Task<StickyCommentResult> UpsertStickyCommentAsync(int pullRequest, string experiment, Func<string?, string> render, string? botLogin = null)
    {
        var (existing, duplicates) = await FindStickyCommentAsync(pullRequest, experiment, botLogin).ConfigureAwait(false);
        var body = render(existing?.Body);
        if (CommentMarker.ExperimentOf(body) != experiment)
        {
            throw new ArgumentException($"the rendered body must start with {CommentMarker.For(experiment)}", nameof(render));
        }

        if (existing is null)
        {
            var created = await CreateCommentAsync(pullRequest, body).ConfigureAwait(false);
            return new StickyCommentResult(created.Id, created.HtmlUrl, StickyAction.Created, duplicates);
        }

        if (existing.Body == body)
        {
            return new StickyCommentResult(existing.Id, existing.HtmlUrl, StickyAction.Unchanged, duplicates);
        }

        var updated = await UpdateCommentAsync(existing.Id, body).ConfigureAwait(false);
        return new StickyCommentResult(updated.Id, updated.HtmlUrl, StickyAction.Updated, duplicates);
    }

    /// <summary>Sets one section of the experiment's sticky comment, keeping the others (see <see cref="CommentSections"/>).</summary>
    public Task<StickyCommentResult> UpsertSectionAsync(int pullRequest, string experiment, string section, string content, string? botLogin = null) =>
        UpsertStickyCommentAsync(pullRequest, experiment, existing => CommentSections.Compose(experiment, existing, section, content), botLogin);

    /// <summary>
    /// GET /repos/{o}/{r}/collaborators/{user}/permission. <c>role_name</c> (admin, maintain, write, triage, read) is
    /// preferred; custom roles fall back to <c>permission</c> (admin, write, read, none). A 404 (not a collaborator,
    /// or no such user) is <see cref="RepoPermission.None"/>.
    /// </summary>
    public async Task<RepoPermission> GetPermissionAsync(string user)
    {
        CollaboratorPermissionResponse response;
        try
        {
            response = await client.Repository.Collaborator.ReviewPermission(Owner, Name, user).ConfigureAwait(false);
        }
        catch (NotFoundException)
        {
            return RepoPermission.None;
        }

        return ParsePermission(response.RoleName) ?? ParsePermission(response.Permission) ?? RepoPermission.None;
    }

    public static RepoPermission? ParsePermission(string? text) => text?.ToUpperInvariant() switch
    {
        "ADMIN" => RepoPermission.Admin,
        "MAINTAIN" => RepoPermission.Maintain,
        "WRITE" => RepoPermission.Write,
        "TRIAGE" => RepoPermission.Triage,
        "READ" => RepoPermission.Read,
        "NONE" => RepoPermission.None,
        _ => null,
    };

    /// <summary>GET /repos/{o}/{r}/pulls/{n}.</summary>
    public async Task<PullRequestInfo> GetPullRequestAsync(int number)
    {
        var pr = await client.PullRequest.Get(Owner, Name, number).ConfigureAwait(false);
        return new PullRequestInfo(
            pr.Number,
            pr.Base?.Repository?.FullName ?? Repository.FullName,
            pr.Head?.Repository?.FullName,
            pr.Head?.Ref ?? "",
            pr.Head?.Sha ?? throw new InvalidOperationException($"pull request #{number} has no head SHA"),
            pr.User?.Login ?? "",
            pr.State.StringValue == "open",
            pr.Draft,
            pr.Labels?.Select(l => l.Name).ToList() ?? []);
    }

    /// <summary>GET /repos/{o}/{r}/pulls/{n}/files (every page; GitHub lists at most 3,000 files).</summary>
    public async Task<IReadOnlyList<ChangedFile>> ListChangedFilesAsync(int pullRequest)
    {
        var files = await client.PullRequest.Files(Owner, Name, pullRequest, AllPages).ConfigureAwait(false);
        return files.Select(f => new ChangedFile(f.FileName, f.Status, string.IsNullOrEmpty(f.PreviousFileName) ? null : f.PreviousFileName)).ToList();
    }

    /// <summary>POST /repos/{o}/{r}/issues/{n}/labels. Returns the labels the pull request has afterwards.</summary>
    public async Task<IReadOnlyList<string>> AddLabelsAsync(int pullRequest, params string[] labels)
    {
        var after = await client.Issue.Labels.AddToIssue(Owner, Name, pullRequest, labels).ConfigureAwait(false);
        return after.Select(l => l.Name).ToList();
    }

    /// <summary>DELETE /repos/{o}/{r}/issues/{n}/labels/{name}. A label that is not there (404) is not an error.</summary>
    public async Task<bool> RemoveLabelAsync(int pullRequest, string label)
    {
        try
        {
            await client.Issue.Labels.RemoveFromIssue(Owner, Name, pullRequest, label).ConfigureAwait(false);
            return true;
        }
        catch (NotFoundException)
        {
            return false;
        }
    }

    /// <summary>The commit-status context of an experiment: one line per experiment in the PR's checks list.</summary>
    public static string StatusContext(string experiment) => $"wf/experiment/{experiment}";

    /// <summary>
    /// POST /repos/{o}/{r}/statuses/{sha}. GitHub keeps the latest status per context, so setting pending then success
    /// on the same context moves one line in the checks list. Descriptions are cut to GitHub's 140 characters.
    /// </summary>
    public async Task SetCommitStatusAsync(string sha, string experiment, CommitStatusState state, string description, Uri? targetUrl = null)
    {
        var status = new NewCommitStatus
        {
            State = state switch
            {
                CommitStatusState.Pending => CommitState.Pending,
                CommitStatusState.Success => CommitState.Success,
                CommitStatusState.Failure => CommitState.Failure,
                _ => CommitState.Error,
            },
            Context = StatusContext(experiment),
            Description = description.Length <= 140 ? description : description[..139] + "…",
            TargetUrl = targetUrl?.ToString(),
        };
        await client.Repository.Status.Create(Owner, Name, sha, status).ConfigureAwait(false);
    }

    /// <summary>
    /// GET /repos/{o}/{r}/issues/{n}/events (every page): who last added <paramref name="label"/> to the pull request, or
    /// null. The label handover (<c>workflow_run</c>) has no actor of its own; the run is asked for by whoever labeled.
    /// </summary>
    public async Task<string?> GetLastLabelerAsync(int pullRequest, string label)
    {
        var events = await client.Issue.Events.GetAllForIssue(Owner, Name, pullRequest, AllPages).ConfigureAwait(false);
        return events
            .Where(e => e.Event.StringValue == "labeled" && string.Equals(e.Label?.Name, label, StringComparison.Ordinal))
            .OrderBy(e => e.CreatedAt).ThenBy(e => e.Id)
            .LastOrDefault()?.Actor?.Login;
    }

    /// <summary>
    /// GET /repos/{o}/{r}/activity?ref=refs/heads/BRANCH&amp;direction=desc&amp;per_page=100: the pushes (and force pushes)
    /// to the pull request's branch, newest first, with GitHub's own timestamps (a commit's date is whatever its author
    /// wrote; a push's time is not). One page: the guard only asks whether any came after a moment.
    /// </summary>
    public async Task<IReadOnlyList<BranchActivity>> ListBranchActivityAsync(string branch)
    {
        var parameters = new Dictionary<string, string>
        {
            ["ref"] = "refs/heads/" + branch,
            ["direction"] = "desc",
            ["per_page"] = "100",
        };
        using var json = await GetJsonAsync($"repos/{Owner}/{Name}/activity", parameters).ConfigureAwait(false)
                         ?? throw new NotFoundException("repository activity is not available", System.Net.HttpStatusCode.NotFound);
        return json.RootElement.EnumerateArray()
            .Select(a => new BranchActivity(
                a.GetProperty("activity_type").GetString() ?? "",
                a.TryGetProperty("after", out var after) ? after.GetString() ?? "" : "",
                a.GetProperty("timestamp").GetDateTimeOffset()))
            .ToList();
    }

    /// <summary>GET /repos/{o}/{r}: the default branch.</summary>
    public async Task<string> GetDefaultBranchAsync() =>
        (await client.Repository.Get(Owner, Name).ConfigureAwait(false)).DefaultBranch;

    /// <summary>
    /// A GET of a REST path relative to the API root (the one Octokit uses: api.github.com, or HOST/api/v3/), as JSON,
    /// for endpoints Octokit does not model (environments, branch policies, rulesets, activity). Null for 404; other
    /// failures throw Octokit's <see cref="ApiException"/> with the status, like the typed calls.
    /// </summary>
    public async Task<System.Text.Json.JsonDocument?> GetJsonAsync(string relativePath, IDictionary<string, string>? parameters = null)
    {
        var query = parameters is { Count: > 0 } ? "?" + string.Join('&', parameters.Select(p => $"{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}")) : "";
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(client.Connection.BaseAddress, relativePath + query));
        request.Headers.TryAddWithoutValidation("Authorization", "token " + token);
        request.Headers.TryAddWithoutValidation("Accept", "application/vnd.github+json");
        request.Headers.TryAddWithoutValidation("X-GitHub-Api-Version", "2022-11-28");
        request.Headers.TryAddWithoutValidation("User-Agent", userAgent);
        using var response = await Http.SendAsync(request).ConfigureAwait(false);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }

        var body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new ApiException($"GET {relativePath}: {(int)response.StatusCode} {response.ReasonPhrase}", response.StatusCode);
        }

        return System.Text.Json.JsonDocument.Parse(body);
    }

    private static IssueCommentInfo ToInfo(IssueComment c) =>
        new(c.Id, c.Body ?? "", c.User?.Login ?? "", c.HtmlUrl ?? "", c.CreatedAt);
}
