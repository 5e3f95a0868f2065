using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;

namespace Workflows.Engine;

/// <summary>What activities and agents share in one process: the store, manifests, run records, options, a DTFx client.</summary>
public sealed class EngineServices(IArtifactStore store, EngineOptions options, TaskHubClient client)
{
    public IArtifactStore Store { get; } = store;
    public ManifestStore Manifests { get; } = new(store);
    public RunRecordStore Runs { get; } = new(store);
    public EngineOptions Options { get; } = options;

    /// <summary>For raising events to orchestrations (GPU job completions).</summary>
    public TaskHubClient Client { get; } = client;

    /// <summary>Told when a run of this worker's orchestrations ends (e.g. the GitHub reporter when a token is configured).</summary>
    public List<IRunFinishedHook> RunFinishedHooks { get; } = [];

    /// <summary>Producer string written into manifests: which worker of which run wrote an output.</summary>
    public string Producer(string runId) => $"{Options.WorkerId}/{runId}";

    /// <summary>A scratch folder for one activity execution (deleted by the caller).</summary>
    public string NewScratchDirectory(string purpose)
    {
        var path = Path.Combine(Path.GetFullPath(Options.CacheDirectory), "scratch", $"{purpose}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>A cache folder keyed by content hash: safe to share between activities and runs, filled once.</summary>
    public string CacheFolder(string kind, string contentHash) =>
        Path.Combine(Path.GetFullPath(Options.CacheDirectory), kind, contentHash);
}
