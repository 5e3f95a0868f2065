using System.Globalization;
using System.Text.Json.Serialization;

namespace Workflows.Artifacts.Runs;

[JsonConverter(typeof(JsonStringEnumConverter<RunStatus>))]
public enum RunStatus
{
    Submitted,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>One step (or one shard of a fanned-out step) of a run, as shown by <c>wf status</c>.</summary>
public sealed record StepRecord
{
    public required string Step { get; init; }
    public string? Shard { get; init; }
    public required string Status { get; init; }
    public bool Cached { get; init; }

    /// <summary>The output's content address (<c>cas/&lt;activity&gt;/&lt;hash&gt;/</c>) once known.</summary>
    public string? OutputPrefix { get; init; }

    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public string? Error { get; init; }

    /// <summary>The step's type (prepare-data, train, ...): what its output holds, whatever the template calls the step.</summary>
    public string? Type { get; init; }
}

/// <summary>
/// Where a run came from when a pull request asked for it: the report step finds the PR and the commit status again
/// from these. <see cref="TriggerId"/> (comment id, or workflow run id for a label) makes a redelivered trigger a no-op.
/// </summary>
public sealed record RunOrigin
{
    /// <summary>owner/name.</summary>
    public required string Repository { get; init; }
    public required int PullRequest { get; init; }
    public required string HeadSha { get; init; }
    public string? Author { get; init; }
    public string? RequestedBy { get; init; }
    public string? TriggerId { get; init; }
}

/// <summary>
/// What is known about one run, stored as <c>runs/&lt;run-id&gt;/run.json</c> next to <c>experiment.yaml</c> (the
/// experiment exactly as submitted).
/// </summary>
public sealed record RunRecord
{
    public const int CurrentSchemaVersion = 1;

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    public required string RunId { get; init; }
    public required string ExperimentName { get; init; }

    /// <summary>Hash of the experiment's canonical form (computed by the spec layer), so re-submissions can be matched.</summary>
    public required string ExperimentHash { get; init; }

    /// <summary>SHA-256 of <c>experiment.yaml</c>'s bytes as submitted: every later read of the file is checked against it.</summary>
    public string? ExperimentSha256 { get; init; }

    /// <summary>The folder the experiment file was submitted from: its relative paths (data, held-out files, haystack) resolve against it.</summary>
    public string? ExperimentDirectory { get; init; }

    /// <summary>Free labels given at submission (e.g. a sweep's name and point), shown by <c>wf status</c>.</summary>
    public IReadOnlyDictionary<string, string>? Labels { get; init; }

    /// <summary>The git commit of the code that runs it.</summary>
    public required string CodeCommit { get; init; }

    /// <summary>The DTFx orchestration instance id.</summary>
    public string? EngineInstanceId { get; init; }

    public RunStatus Status { get; init; } = RunStatus.Submitted;
    public required DateTimeOffset SubmittedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public IReadOnlyList<StepRecord> Steps { get; init; } = [];
    public string? Error { get; init; }

    /// <summary>The pull request that asked for the run (null for runs started by hand).</summary>
    public RunOrigin? Origin { get; init; }

    /// <summary>The experiment's <c>data.paths</c> as the run read them (absolute), so an exact rerun reads the same files.</summary>
    public IReadOnlyList<string>? DataPaths { get; init; }

    /// <summary>The experiment's <c>evaluation.domain_loss.paths</c> as the run read them (absolute).</summary>
    public IReadOnlyList<string>? HeldOutPaths { get; init; }

    /// <summary>Workflow template name and version the run was bound to.</summary>
    public string? WorkflowName { get; init; }

    public int? WorkflowVersion { get; init; }

    /// <summary>For a rerun: the run it reproduces.</summary>
    public string? RerunOf { get; init; }

    /// <summary>For a forced rerun: the first step whose cached output was not reused (it and every later step recomputed).</summary>
    public string? RecomputeFrom { get; init; }

    /// <summary>The sweep this run is a variant of (<see cref="SweepRecord"/>), or null.</summary>
    public string? SweepId { get; init; }

    [JsonIgnore]
    public TimeSpan? Duration => StartedAt is { } s && CompletedAt is { } c ? c - s : null;

    [JsonIgnore]
    public bool IsFinished => Status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Cancelled;

    /// <summary>A new run id: UTC time (sorts chronologically) plus 6 random hex digits, e.g. <c>20260301-142501-3fa9c2</c>.</summary>
    public static string NewRunId(DateTimeOffset? now = null) =>
        (now ?? DateTimeOffset.UtcNow).UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..6];
}
