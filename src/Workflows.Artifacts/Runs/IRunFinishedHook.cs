namespace Workflows.Artifacts.Runs;

/// <summary>
/// Told when a run has finished (succeeded or failed), after its record holds the final status: the engine calls every
/// registered hook from the orchestration's last activity. The GitOps side implements it to put the results back on the
/// pull request; the engine itself knows nothing about GitHub. Called at least once per run (activities are
/// at-least-once), so a hook must be idempotent.
/// </summary>
public interface IRunFinishedHook
{
    Task OnRunFinishedAsync(RunRecord record, CancellationToken cancellationToken = default);
}
