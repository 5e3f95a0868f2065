using System.Collections.Concurrent;
using System.Text;
using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;
using Workflows.Engine.Jobs;
using Workflows.Engine.Steps;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Engine.Tests;

/// <summary>
/// One real Azurite (WF_TEST_AZURITE_CONNECTION_STRING, or started here from infra/azurite on free ports) and one real
/// DTFx worker on a task hub and container unique to this test run; the hub is deleted at the end. Test step types
/// produce real blobs; their behaviour (fail once, always fail) is keyed by a per-test "test" parameter.
/// </summary>
public sealed class EngineFixture : IAsyncLifetime, IDisposable
{
    public const string ConnectionStringVariable = "WF_TEST_AZURITE_CONNECTION_STRING";

    private string? _azuriteData;
    private AzuriteProcess? _azurite;
    private readonly CancellationTokenSource _agentStop = new();
    private Task _agentTask = Task.CompletedTask;

    /// <summary>A real GPU agent (blob leases, status blobs, completion events) running the test job type.</summary>
    public GpuAgent Agent { get; private set; } = null!;

    public StorageConnection Connection { get; private set; } = null!;
    public EngineHost Host { get; private set; } = null!;
    public EngineClient Client { get; private set; } = null!;
    public string RepositoryRoot { get; } = FindRepositoryRoot();
    public string CacheDirectory { get; } = Path.Combine(Path.GetTempPath(), "wf-engine-tests-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>Item executions per test key ("test" parameter), to prove cached runs execute nothing.</summary>
    public ConcurrentDictionary<string, int> Executions { get; } = new();

    /// <summary>Per test key: which item index fails, and how many times before it succeeds (int.MaxValue = always).</summary>
    public ConcurrentDictionary<string, (int Item, int Times)> Failures { get; } = new();

    public async Task InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(ConnectionStringVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            Connection = StorageConnection.FromConnectionString(external);
        }
        else
        {
            _azuriteData = Path.Combine(Path.GetTempPath(), "wf-engine-azurite-" + Guid.NewGuid().ToString("N")[..8]);
            _azurite = await AzuriteProcess.StartAsync(new AzuriteOptions
            {
                DataDirectory = _azuriteData,
                Installation = AzuriteInstallation.Locate(AppContext.BaseDirectory),
                InstallIfMissing = true,
                ReadyTimeout = TimeSpan.FromSeconds(90),
            });
            Connection = _azurite.Connection;
        }

        var options = new EngineOptions
        {
            TaskHubName = EngineOptions.UniqueHubName("wftest"),
            ContainerName = "e-" + Guid.NewGuid().ToString("N")[..20],
            CacheDirectory = CacheDirectory,
            GpuJobPollInterval = TimeSpan.FromSeconds(2),
        };
        Host = await EngineHost.StartAsync(Connection, options, (registry, services) =>
        {
            registry.Register(FanOutArtifactStep.Create(services, FanOutArtifactStep.Contract(ItemsType), Produce));
            registry.Register(EmptyFanOutStep.Create());
            registry.Register(JobStep.Create(services, new TestGpuHandler(this)));
            registry.Register(FanOutArtifactStep.Create(services, FanOutArtifactStep.Contract(FaultTests.ConsumeType, ItemsType),
                (item, ct) => FaultTests.ConsumeAsync(services, item, ct)));
        });
        Client = Host.Client;
        Agent = new GpuAgent(Host.Services, Host.Steps.GpuJobs) { PollInterval = TimeSpan.FromMilliseconds(500) };
        _agentTask = Agent.RunAsync(_agentStop.Token);
    }

    public const string ItemsType = "test-items";

    /// <summary>Per test key: a gate every item of that test waits at before it produces its bytes.</summary>
    public ConcurrentDictionary<string, TaskCompletionSource> Gates { get; } = new();

    private async Task<byte[]> Produce(FanOutItem item, CancellationToken cancellationToken)
    {
        var test = item.Parameters.Test;
        Executions.AddOrUpdate(test, 1, (_, n) => n + 1);
        if (Gates.TryGetValue(test, out var gate))
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        if (Failures.TryGetValue(test, out var f) && f.Item == item.Index && f.Times > 0)
        {
            Failures[test] = (f.Item, f.Times == int.MaxValue ? f.Times : f.Times - 1);
            throw new InvalidOperationException($"item {item.Index} broke on purpose");
        }

        return Encoding.UTF8.GetBytes($"{test}: item {item.Index} of {item.Count}\n");
    }

    /// <summary>The smoke experiment (a real spec) with a workflow of the given steps.</summary>
    public SubmitRequest Request(params BoundStep[] steps)
    {
        var file = Path.Combine(RepositoryRoot, "experiments", "smoke.yaml");
        var spec = ExperimentLoader.LoadFile(file, new LoadOptions(WorkflowsDirectory: Path.Combine(RepositoryRoot, "workflows"))).Require();
        return new SubmitRequest(spec, File.ReadAllText(file), new BoundWorkflow("test", 1, steps), Path.GetDirectoryName(file)!, "test");
    }

    public static BoundStep Step(string id, string type, int fanOut, string test, IReadOnlyList<string>? needs = null, int maxAttempts = 3) =>
        Step(id, type, fanOut, new TestParameters(test), needs, maxAttempts);

    public static BoundStep Step(string id, string type, int fanOut, TestParameters parameters, IReadOnlyList<string>? needs = null, int maxAttempts = 3,
        TimeSpan? timeout = null) =>
        new(id, type, needs ?? [], fanOut > 1 ? "shards" : null, fanOut, parameters.Json(),
            maxAttempts, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(4), timeout ?? TimeSpan.FromMinutes(2));

    public async Task<RunView> RunAsync(SubmitRequest request)
    {
        var runId = await Client.SubmitAsync(request);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        return await Client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(250), cancellationToken: timeout.Token);
    }

    private static string FindRepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Workflows.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new DirectoryNotFoundException("repository root (Workflows.sln) not found above the test assembly");
    }

    public void Dispose() => _agentStop.Dispose();

    public async Task DisposeAsync()
    {
        await _agentStop.CancelAsync();
        await _agentTask;
        await Host.DisposeAsync();
        await Client.DeleteHubAsync();
        if (_azurite is not null)
        {
            await _azurite.DisposeAsync();
        }

        foreach (var dir in new[] { _azuriteData, CacheDirectory })
        {
            if (dir is not null && Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class EngineCollection : ICollectionFixture<EngineFixture>
{
    public const string Name = "Engine";
}
