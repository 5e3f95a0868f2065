using Workflows.Cli.Commands;
using Workflows.Cli.GitOps;
using Workflows.Engine;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.GitOps.Tests.Fakes;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// What the story tests drive with wf commands: the environment those commands read (the local GitHub server, the test
/// storage, a unique task hub and containers), and a real in-process engine worker with the GitHub results hook plus a
/// GPU agent on that hub. Disposing stops them, deletes the hub and the cache, and clears the environment.
/// </summary>
internal sealed class StoryEngine : IAsyncDisposable
{
    private readonly CancellationTokenSource _agentStop = new();
    private Task _agentTask = Task.CompletedTask;

    private StoryEngine(IReadOnlyDictionary<string, string?> environment, string cache)
    {
        Environment = environment;
        Cache = cache;
    }

    public IReadOnlyDictionary<string, string?> Environment { get; }
    public string Cache { get; }
    public EngineHost Host { get; private set; } = null!;
    public static string Experiments => Path.Combine(Root, "experiments");

    /// <param name="name">Prefix of the hub and container names (letters only).</param>
    /// <param name="extra">More environment variables the test's commands read (they are cleared at the end too).</param>
    public static async Task<StoryEngine> StartAsync(TestStorage storage, FakeGitHub gh, string name, TimeSpan jobPoll, TimeSpan agentPoll,
        IReadOnlyDictionary<string, string?>? extra = null)
    {
        var suffix = Guid.NewGuid().ToString("N")[..10];
        var env = new Dictionary<string, string?>(extra ?? new Dictionary<string, string?>())
        {
            ["GITHUB_TOKEN"] = gh.Token,
            ["WF_GITHUB_API_URL"] = gh.BaseUrl.ToString(),
            ["WF_STORAGE_CONNECTION_STRING"] = storage.Connection.ConnectionString,
            ["WF_TASK_HUB"] = "wf" + name + suffix,
            ["WF_ARTIFACTS_CONTAINER"] = name + "-" + suffix,
            ["WF_REPORTS_CONTAINER"] = name + "-reports-" + suffix,
            ["WF_REPORTS_ACCESS"] = "public",
        };
        foreach (var (k, v) in env)
        {
            System.Environment.SetEnvironmentVariable(k, v);
        }

        var engine = new StoryEngine(env, Path.Combine(Path.GetTempPath(), $"wf-{name}-{suffix}"));
        var options = new EngineOptions
        {
            TaskHubName = env["WF_TASK_HUB"]!,
            ContainerName = env["WF_ARTIFACTS_CONTAINER"]!,
            CacheDirectory = engine.Cache,
            GpuJobPollInterval = jobPoll,
            ResolveTokenizer = n => TokenizerResolver.Resolve(n, null, Experiments),
        };
        engine.Host = await EngineHost.StartAsync(storage.Connection, options, (_, services) => GitOpsWiring.AddRunFinishedHook(services, storage.Connection));
        engine._agentTask = new GpuAgent(engine.Host.Services, engine.Host.Steps.GpuJobs) { PollInterval = agentPoll }.RunAsync(engine._agentStop.Token);
        return engine;
    }

    /// <summary>
    /// Waits for the run to end before <paramref name="deadline"/> fires (one deadline may cover several waits); on
    /// timeout the exception says where the run stood, not just that it timed out.
    /// </summary>
    /// <param name="within">The deadline as the message states it ("8 min").</param>
    public async Task<RunView> WaitAsync(string runId, CancellationToken deadline, string within)
    {
        RunView? last = null;
        try
        {
            return await Host.Client.WaitAsync(runId, v => last = v, TimeSpan.FromMilliseconds(500), deadline);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"run {runId} did not finish in {within}; steps: " + string.Join("; ",
                (last?.Progress?.Steps ?? new Dictionary<string, StepProgress>()).Select(p => $"{p.Key} {p.Value.State} ({p.Value.Phase}) {p.Value.Done}/{p.Value.Total}")));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _agentStop.CancelAsync();
        await _agentTask;
        await Host.DisposeAsync();
        await Host.Client.DeleteHubAsync();
        foreach (var k in Environment.Keys)
        {
            System.Environment.SetEnvironmentVariable(k, null);
        }

        if (Directory.Exists(Cache))
        {
            Directory.Delete(Cache, recursive: true);
        }

        _agentStop.Dispose();
    }
}
