using Workflows.Experiments.Yaml;

namespace Workflows.GitOps.Runs;

/// <summary>What the GitOps side reads from an experiment file itself, without validating the rest of it.</summary>
public static class ExperimentGitOps
{
    /// <summary>
    /// True when the file says <c>gitops: { require_other_approver: true }</c>. An author can only tighten the rule
    /// this way (the repository's WF_REQUIRE_OTHER_APPROVER turns it on for every experiment). An unreadable file says
    /// nothing here: the submitter refuses it with its own errors.
    /// </summary>
    public static bool RequiresOtherApprover(string path) =>
        YamlTreeReader.ReadFile(path).Root is YMapping root
        && root["gitops"] is YMapping gitops
        && gitops["require_other_approver"] is YScalar { Plain: true, Value: "true" or "True" or "TRUE" };

    /// <summary>The file's top-level <c>name:</c> (read through the hardened reader; no other key needs to be valid), or null.</summary>
    public static string? NameOf(string path) =>
        YamlTreeReader.ReadFile(path).Root is YMapping root && root["name"] is YScalar { Value.Length: > 0 } name ? name.Value : null;
}
