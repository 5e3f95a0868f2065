using System.Security.Cryptography;
using System.Text;
using Workflows.Artifacts.Runs;
using Workflows.Cli.Sweeps;
using Workflows.Engine;
using Workflows.Experiments.Matrix;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.GitOps;

/// <summary>
/// The pull-request bot's <see cref="IRunSubmitter"/> over the engine: prepares the experiment file (spec + workflow
/// template from <paramref name="workflowsDirectory"/>, the default branch's), submits it with the PR's repository,
/// number, head SHA, author, requester and trigger id recorded in the run, and returns at once. The run id is derived
/// from (repository, PR, trigger id, experiment), so a redelivered trigger finds the run it already started. A sweep file
/// is submitted as a sweep (<see cref="SweepSubmission"/>) under that id, its variants as <c>&lt;id&gt;-NN</c>.
/// </summary>
public sealed class EngineRunSubmitter(EngineClient client, string workflowsDirectory, string codeCommit) : IRunSubmitter
{
    public async Task<SubmittedRun> SubmitAsync(RunRequest request, CancellationToken cancellationToken = default)
    {
        if (SweepLoader.IsSweepFile(request.ExperimentPath))
        {
            return await SubmitSweepAsync(request).ConfigureAwait(false);
        }

        var prepared = EngineClient.Prepare(request.ExperimentPath, workflowsDirectory, codeCommit);
        if (prepared.Spec.Name != request.Experiment)
        {
            throw new InvalidOperationException(
                $"{request.ExperimentPath} declares name '{prepared.Spec.Name}', but the pull request names it '{request.Experiment}' (file stem): they must match");
        }

        var runId = RunIdFor(request);
        await client.SubmitAsync(prepared, runId, new SubmitOptions { Origin = OriginOf(request) }).ConfigureAwait(false);
        return new SubmittedRun(runId);
    }

    /// <summary>A sweep file: every variant as its own run under one sweep id (the run id this trigger would get).</summary>
    private async Task<SubmittedRun> SubmitSweepAsync(RunRequest request)
    {
        var prepared = SweepSubmission.Prepare(request.ExperimentPath, workflowsDirectory, codeCommit);
        if (prepared.Name != request.Experiment)
        {
            throw new InvalidOperationException(
                $"{request.ExperimentPath} declares name '{prepared.Name}', but the pull request names it '{request.Experiment}' (file stem): they must match");
        }

        var sweepId = RunIdFor(request);
        var sweep = await SweepSubmission.SubmitAsync(client, prepared, sweepId, OriginOf(request)).ConfigureAwait(false);
        return new SubmittedRun(sweepId, Sweep: SweepSubmission.SubmittedReport(sweep));
    }

    private static RunOrigin OriginOf(RunRequest request) => new()
    {
        Repository = request.Repository.FullName,
        PullRequest = request.PullRequest,
        HeadSha = request.HeadSha,
        Author = request.Author,
        RequestedBy = request.RequestedBy,
        TriggerId = request.TriggerId,
    };

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
