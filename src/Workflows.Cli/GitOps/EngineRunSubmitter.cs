using System.Security.Cryptography;
using System.Text;
using Workflows.Artifacts.Runs;
using Workflows.Engine;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.GitOps;

/// <summary>
/// The pull-request bot's <see cref="IRunSubmitter"/> over the engine: prepares the experiment file (spec + workflow
/// template from <paramref name="workflowsDirectory"/>, the default branch's), submits it with the PR's repository,
/// number, head SHA, author, requester and trigger id recorded in the run, and returns at once. The run id is derived
/// from (repository, PR, trigger id, experiment), so a redelivered trigger finds the run it already started.
/// </summary>
public sealed class EngineRunSubmitter(EngineClient client, string workflowsDirectory, string codeCommit) : IRunSubmitter
{
    public async Task<SubmittedRun> SubmitAsync(RunRequest request, CancellationToken cancellationToken = default)
    {
        var prepared = EngineClient.Prepare(request.ExperimentPath, workflowsDirectory, codeCommit);
        if (prepared.Spec.Name != request.Experiment)
        {
            throw new InvalidOperationException(
                $"{request.ExperimentPath} declares name '{prepared.Spec.Name}', but the pull request names it '{request.Experiment}' (file stem): they must match");
        }

        var runId = RunIdFor(request);
        await client.SubmitAsync(prepared, runId, new SubmitOptions
        {
            Origin = new RunOrigin
            {
                Repository = request.Repository.FullName,
                PullRequest = request.PullRequest,
                HeadSha = request.HeadSha,
                Author = request.Author,
                RequestedBy = request.RequestedBy,
                TriggerId = request.TriggerId,
            },
        }).ConfigureAwait(false);
        return new SubmittedRun(runId);
    }

    /// <summary><c>pr&lt;N&gt;-&lt;experiment&gt;-&lt;10 hex of SHA-256(repo, PR, trigger, experiment)&gt;</c>; a fresh time-based id when there is no trigger id.</summary>
    public static string RunIdFor(RunRequest request)
    {
        if (string.IsNullOrWhiteSpace(request.TriggerId))
        {
            return RunRecord.NewRunId();
        }

        var identity = $"{request.Repository.FullName}\n{request.PullRequest}\n{request.TriggerId}\n{request.Experiment}";
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..10];
        return $"pr{request.PullRequest}-{request.Experiment}-{hash}";
    }
}
