using Microsoft.Extensions.Logging;

namespace Workflows.Engine.Hosting;

/// <summary>Which long-running process reads the environment: they differ only in where they keep their cache.</summary>
public enum WorkerRole
{
    /// <summary><c>wf worker</c>: orchestrations and CPU activities; scratch under <c>WF_WORK_DIR</c>.</summary>
    Worker,
    /// <summary><c>wf gpu-agent</c>: GPU jobs; its verified data and checkpoint cache under <c>WF_DATA_CACHE</c>.</summary>
    GpuAgent,
    /// <summary>Client commands (<c>wf submit</c>, <c>wf status</c>, ...) and <c>wf run</c>.</summary>
    Client,
}

/// <summary>
/// Everything a worker or GPU agent takes from its environment, with the names the Kubernetes manifests use
/// (<c>infra/k8s/base/configmap.yaml</c>): no command-line flag is needed in a pod. Unset variables keep the local
/// defaults (<c>wf</c> hub, <c>workflows</c> container, <c>.wf/cache</c>), so a developer's box needs none of them.
/// Storage itself (<c>WF_STORAGE_CONNECTION_STRING</c> or <c>WF_STORAGE_ACCOUNT_URL</c>) is read by
/// <see cref="Workflows.Artifacts.StorageConnection.FromEnvironment"/>.
/// </summary>
public sealed record WorkerEnvironment
{
    public const string TaskHubVariable = "WF_TASK_HUB";
    public const string ArtifactsContainerVariable = "WF_ARTIFACTS_CONTAINER";
    public const string ReportsContainerVariable = "WF_REPORTS_CONTAINER";
    public const string LogLevelVariable = "WF_LOG_LEVEL";
    public const string HeartbeatFileVariable = "WF_HEARTBEAT_FILE";
    public const string WorkDirVariable = "WF_WORK_DIR";
    public const string DataCacheVariable = "WF_DATA_CACHE";
    public const string ShutdownGraceVariable = "WF_SHUTDOWN_GRACE_SECONDS";

    /// <summary>The container <c>wf</c> used before it was configurable; kept as the local default so existing data stays visible.</summary>
    public const string DefaultContainer = "workflows";

    public string TaskHub { get; init; } = "wf";
    public string ArtifactsContainer { get; init; } = DefaultContainer;
    public string? ReportsContainer { get; init; }
    public LogLevel LogLevel { get; init; } = LogLevel.Information;
    public string? HeartbeatFile { get; init; }
    public string CacheDirectory { get; init; } = Path.Combine(".wf", "cache");

    /// <summary>
    /// How long a SIGTERMed process lets running work finish before handing it back. Defaults stay inside the pods'
    /// <c>terminationGracePeriodSeconds</c> (worker 120 s, GPU agent 600 s) with room to release leases and exit.
    /// </summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(100);

    public static WorkerEnvironment Read(WorkerRole role, Func<string, string?>? getEnvironmentVariable = null)
    {
        getEnvironmentVariable ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => getEnvironmentVariable(name) is { } v && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

        var hub = Get(TaskHubVariable) ?? "wf";
        if (!IsValidTaskHub(hub))
        {
            throw new ArgumentException($"{TaskHubVariable} '{hub}' is not a valid task hub name: up to 45 letters and digits, starting with a letter.");
        }

        var container = Get(ArtifactsContainerVariable) ?? DefaultContainer;
        Workflows.Artifacts.Store.BlobArtifactStore.ValidateContainerName(container);
        var reports = Get(ReportsContainerVariable);
        if (reports is not null)
        {
            Workflows.Artifacts.Store.BlobArtifactStore.ValidateContainerName(reports);
        }

        var level = LogLevel.Information;
        if (Get(LogLevelVariable) is { } levelText && !Enum.TryParse(levelText, ignoreCase: true, out level))
        {
            throw new ArgumentException($"{LogLevelVariable} '{levelText}' is not a log level (Trace, Debug, Information, Warning, Error, Critical, None).");
        }

        var workDir = Get(WorkDirVariable);
        var dataCache = Get(DataCacheVariable);
        // Workers have no volume at WF_DATA_CACHE (only /tmp and WF_WORK_DIR are writable in their pods).
        var cache = role == WorkerRole.GpuAgent && dataCache is not null ? dataCache
            : workDir is not null ? Path.Combine(workDir, "cache")
            : Path.Combine(".wf", "cache");

        var grace = role == WorkerRole.GpuAgent ? TimeSpan.FromSeconds(570) : TimeSpan.FromSeconds(100);
        if (Get(ShutdownGraceVariable) is { } graceText)
        {
            if (!int.TryParse(graceText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
            {
                throw new ArgumentException($"{ShutdownGraceVariable} '{graceText}' is not a whole number of seconds.");
            }

            grace = TimeSpan.FromSeconds(seconds);
        }

        return new WorkerEnvironment
        {
            TaskHub = hub,
            ArtifactsContainer = container,
            ReportsContainer = reports,
            LogLevel = level,
            HeartbeatFile = Get(HeartbeatFileVariable),
            CacheDirectory = cache,
            ShutdownGrace = grace,
        };
    }

    /// <summary>
    /// Task hub names become queue, table and container names (<c>HUB-control-00</c>, <c>HUBHistory</c>, <c>HUB-leases</c>),
    /// so: letters and digits, starting with a letter, at most 45 (the suffixes make even "wf" long enough for Azure's 3-character minimum).
    /// </summary>
    public static bool IsValidTaskHub(string name) =>
        name.Length is >= 1 and <= 45 && char.IsAsciiLetter(name[0]) && name.All(char.IsAsciiLetterOrDigit);
}
