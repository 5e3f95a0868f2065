using System.Collections.Concurrent;
using Workflows.Artifacts.Runs;

namespace Workflows.Engine.Hosting;

/// <summary>The run was cancelled (<c>wf cancel</c>); the activity did not run.</summary>
public sealed class RunCancelledException(string runId) : Exception($"run '{runId}' was cancelled; its remaining work is skipped")
{
    public string RunId { get; } = runId;
}

/// <summary>
/// Whether a run was cancelled, read from its run record and remembered for <see cref="RecheckAfter"/> (a cancelled
/// run stays cancelled, so that answer is kept for good). DTFx's terminate stops the orchestration but leaves its
/// already-scheduled activity messages in the work-item queue; workers check this before running one, so a
/// cancelled fan-out stops within a couple of seconds instead of running its remaining shards for nothing.
/// </summary>
public sealed class CancelledRuns(RunRecordStore runs)
{
    public static readonly TimeSpan RecheckAfter = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<string, (bool Cancelled, DateTime CheckedAt)> _known = new(StringComparer.Ordinal);

    public async Task<bool> IsCancelledAsync(string runId, CancellationToken cancellationToken = default)
    {
        if (_known.TryGetValue(runId, out var known) && (known.Cancelled || DateTime.UtcNow - known.CheckedAt < RecheckAfter))
        {
            return known.Cancelled;
        }

        // A run record may be missing (instances started outside EngineClient): such runs cannot be cancelled through wf.
        var record = await runs.GetAsync(runId, cancellationToken).ConfigureAwait(false);
        var cancelled = record?.Record.Status == RunStatus.Cancelled;
        _known[runId] = (cancelled, DateTime.UtcNow);
        return cancelled;
    }
}
