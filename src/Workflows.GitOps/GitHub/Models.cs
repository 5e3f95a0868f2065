namespace Workflows.GitOps.GitHub;

/// <summary>A repository as "owner/name".</summary>
public sealed record RepoRef(string Owner, string Name)
{
    public string FullName => $"{Owner}/{Name}";

    public override string ToString() => FullName;

    public static RepoRef Parse(string fullName)
    {
        var parts = fullName.Split('/');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
        {
            throw new FormatException($"'{fullName}' is not a repository name of the form owner/name");
        }

        return new RepoRef(parts[0], parts[1]);
    }
}

/// <summary>
/// A user's role on the repository, weakest first. GitHub's <c>permission</c> field folds maintain into write and
/// triage into read; <c>role_name</c> keeps them apart, so both are read (see <see cref="GitHubRepoClient.GetPermissionAsync"/>).
/// </summary>
public enum RepoPermission
{
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

/// <summary>What the guard and the bot need to know about a pull request, read from the API.</summary>
public sealed record PullRequestInfo(
    int Number,
    string BaseRepoFullName,
    string? HeadRepoFullName,
    string HeadRef,
    string HeadSha,
    string Author,
    bool IsOpen,
    bool IsDraft,
    IReadOnlyList<string> Labels)
{
    /// <summary>
    /// A pull request whose head lives in another repository (a fork), or whose head repository was deleted (GitHub then
    /// reports <c>head.repo: null</c>; we cannot prove it is ours, so it counts as a fork).
    /// </summary>
    public bool IsFork => HeadRepoFullName is null || !string.Equals(HeadRepoFullName, BaseRepoFullName, StringComparison.OrdinalIgnoreCase);
}

/// <summary>An issue or pull-request conversation comment.</summary>
public sealed record IssueCommentInfo(long Id, string Body, string Author, string HtmlUrl, DateTimeOffset CreatedAt);

/// <summary>
/// A file a pull request changes, as <c>GET /repos/{o}/{r}/pulls/{n}/files</c> reports it. Status is GitHub's:
/// added, removed, modified, renamed, copied, changed, unchanged. <see cref="PreviousPath"/> is set for renames.
/// </summary>
public sealed record ChangedFile(string Path, string Status, string? PreviousPath = null);

/// <summary>One entry of the repository activity log for a branch: push, force_push, branch_creation, ...; GitHub's time.</summary>
public sealed record BranchActivity(string Type, string After, DateTimeOffset Timestamp);

/// <summary>The four states of a commit status (<c>POST /repos/{o}/{r}/statuses/{sha}</c>).</summary>
public enum CommitStatusState
{
    Pending,
    Success,
    Failure,
    Error,
}

public enum StickyAction
{
    Created,
    Updated,
    Unchanged,
}

/// <summary>
/// What <see cref="GitHubRepoClient.UpsertStickyCommentAsync"/> did. <see cref="DuplicateIds"/> lists other comments that
/// carry the same marker (left alone, reported so a person can delete them; the bot never creates a second one).
/// </summary>
public sealed record StickyCommentResult(long CommentId, string HtmlUrl, StickyAction Action, IReadOnlyList<long> DuplicateIds);
