using System.CommandLine;
using Workflows.GitOps.Doctor;
using Workflows.GitOps.GitHub;

namespace Workflows.Cli.Commands;

/// <summary><c>wf pr doctor</c>: the repository settings the GitOps trust model needs, read through the API.</summary>
public static class PrDoctorCommand
{
    public static Command Create(CliContext cli)
    {
        var repo = new Option<string?>("--repo") { Description = "owner/name (default: $GITHUB_REPOSITORY)." };
        var environment = new Option<string>("--environment")
        {
            Description = "The environment whose secrets the submit, archive and rerun jobs use.",
            DefaultValueFactory = _ => RepositoryDoctor.DefaultEnvironment,
        };
        var secret = new Option<string>("--secret") { Description = "The storage secret's name.", DefaultValueFactory = _ => RepositoryDoctor.DefaultSecret };
        var command = new Command("doctor", $"""
            Read the repository's settings through the GitHub API and say what the experiment workflows' trust model is
            missing: the '{RepositoryDoctor.DefaultEnvironment}' environment limited to the default branch (a pull request's workflow file
            or a dispatch from another branch could otherwise read its secrets), its required reviewers, the storage
            secret in that environment and not in the repository, reviewed pull requests on the default branch and the
            '{RepositoryDoctor.ArchiveCheckJob}' required check, a read-only default workflow token, and the variables the workflows read.
            Exit 1 when a required setting is missing. Needs a token that may read them (an admin's: fine-grained
            Administration, Actions, Environments, Secrets and Variables read).

            Example:
              GITHUB_TOKEN=$(gh auth token) wf pr doctor --repo org/experiments
            """)
        {
            repo, environment, secret,
        };
        command.SetAction(async (parse, ct) =>
        {
            var github = new GitHubRepoClient(GitHubSettings.FromEnvironment(parse.GetValue(repo)));
            var findings = await new RepositoryDoctor(github).CheckAsync(parse.GetValue(environment)!, parse.GetValue(secret)!);
            foreach (var finding in findings)
            {
                cli.Out.WriteLine(finding.ToString());
            }

            var failed = findings.Count(f => f.Level == FindingLevel.Fail);
            var unknown = findings.Count(f => f.Level == FindingLevel.Unknown);
            cli.Out.WriteLine($"{github.Repository}: {findings.Count(f => f.Level == FindingLevel.Ok)} ok, {findings.Count(f => f.Level == FindingLevel.Warn)} warning(s), {failed} missing, {unknown} not readable");
            return failed > 0 ? ExitCodes.InvalidInput : ExitCodes.Ok;
        });
        return command;
    }
}
