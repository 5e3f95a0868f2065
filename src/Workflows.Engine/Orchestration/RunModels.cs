using Workflows.Experiments.Templates;

namespace Workflows.Engine.Orchestration;

// Everything that crosses the orchestration boundary is small: names, keys, hashes, counts. Never data.

/// <summary>The orchestration's input: the bound workflow and where the experiment's relative paths resolve.</summary>
/// <param name="ExperimentDirectory">The folder the experiment file was submitted from (absolute): data, held-out and haystack paths resolve against it.</param>
/// <param name="RecomputeFrom">A forced rerun: this step and every later one (workflow order) ignore cached outputs and recompute.</param>
public sealed record RunInput(
    string RunId,
    string ExperimentName,
    string ExperimentHash,
    BoundWorkflow Workflow,
    string ExperimentDirectory,
    string? RecomputeFrom = null)
{
    /// <summary>Whether <paramref name="step"/> may take its output from the cache (false for RecomputeFrom and later steps).</summary>
    public bool MayReuseCache(string step)
    {
        if (RecomputeFrom is null)
        {
            return true;
        }

        var ids = Workflow.Steps.Select(s => s.Id).ToList();
        var from = ids.IndexOf(RecomputeFrom);
        return from < 0 || ids.IndexOf(step) < from;
    }
}

/// <summary>A step's published output: where it lives and the content hash downstream keys are derived from.</summary>
public sealed record StepOutput(string Step, string Activity, string KeyHash, string Prefix, string ContentHash, bool Cached);

/// <summary>Live progress of one step, part of the orchestration's custom status (read by <c>wf status</c>/<c>wf watch</c>).</summary>
public sealed record StepProgress
{
    public string State { get; init; } = StepStates.Pending;
    public int Done { get; init; }
    public int Total { get; init; }
    public int CachedItems { get; init; }
    public bool Cached { get; init; }
    public int Attempts { get; init; }
    public int Retries { get; init; }
    public string? Phase { get; init; }
    public string? Error { get; init; }
    public string? FailedShard { get; init; }
    public DateTime? StartedAt { get; init; }
    public DateTime? CompletedAt { get; init; }
    public string? OutputPrefix { get; init; }
}

public static class StepStates
{
    public const string Pending = "pending";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Skipped = "skipped";
}

/// <summary>The custom status: one entry per step, in workflow order.</summary>
public sealed record RunProgress(IReadOnlyDictionary<string, StepProgress> Steps);

/// <summary>The orchestration's output.</summary>
public sealed record RunResult(bool Succeeded, IReadOnlyDictionary<string, StepOutput> Outputs, string? FailedStep, string? FailedShard, string? Error);

/// <summary>A step that failed after its retries; carries the shard (fan-out item) that failed.</summary>
public sealed class StepFailedException(string step, string? shard, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public string Step { get; } = step;
    public string? Shard { get; } = shard;
}
