using System.Text;

namespace Workflows.GitOps.Guard;

/// <summary>
/// The guard's decision as step outputs (the file named by $GITHUB_OUTPUT): verdict, experiments (space-separated),
/// head_sha, and reason. The reason uses the multi-line NAME&lt;&lt;DELIMITER form with a delimiter that cannot occur
/// in it, because it quotes text a commenter wrote and must not be able to set other outputs.
/// </summary>
public static class GitHubOutputs
{
    public static string Format(GuardDecision decision, string? headSha)
    {
        var delimiter = "WF_REASON_" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(decision.Reason)))[..16];
        var sb = new StringBuilder();
        sb.Append("verdict=").Append(decision.Verdict.ToString().ToLowerInvariant()).Append('\n');
        sb.Append("experiments=").Append(string.Join(' ', decision.Experiments)).Append('\n');
        sb.Append("head_sha=").Append(decision.HeadSha ?? headSha ?? "").Append('\n');
        sb.Append("reason<<").Append(delimiter).Append('\n').Append(decision.Reason.Replace("\r", "", StringComparison.Ordinal)).Append('\n').Append(delimiter).Append('\n');
        return sb.ToString();
    }
}
