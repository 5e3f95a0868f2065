using DurableTask.AzureStorage;
using DurableTask.Core;
using Workflows.Artifacts;
using Workflows.Artifacts.Store;
using Workflows.Engine.Activities;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;

namespace Workflows.Engine;

/// <summary>
/// A worker process's engine: a DTFx <see cref="TaskHubWorker"/> on Azure Storage (Azurite locally) running the
/// experiment orchestration and the activities of every registered step type. Start as many as you like against one
/// storage account: they share the work through the hub's partitioned control queues and the work-item queue.
/// </summary>
public sealed class EngineHost : IAsyncDisposable
{
    /// <summary>Workflow template versions this build can run; the orchestration is registered once per version.</summary>
    public static readonly IReadOnlyList<int> SupportedWorkflowVersions = [1];

    private readonly TaskHubWorker _worker;

    private EngineHost(TaskHubWorker worker, AzureStorageOrchestrationService service, EngineServices services, StepRegistry registry)
    {
        _worker = worker;
        Service = service;
        Services = services;
        Steps = registry;
    }

    public AzureStorageOrchestrationService Service { get; }
    public EngineServices Services { get; }
    public StepRegistry Steps { get; }
    public EngineClient Client => new(Service, Services.Store, Services.Options);

    /// <summary>The DTFx settings of issue 4 §5 (see <see cref="EngineOptions"/> for why each differs from the default).</summary>
    public static AzureStorageOrchestrationService CreateService(StorageConnection connection, EngineOptions options)
    {
        var settings = new AzureStorageOrchestrationServiceSettings
        {
            StorageAccountClientProvider = new StorageAccountClientProvider(connection.ConnectionString),
            TaskHubName = options.TaskHubName,
            PartitionCount = options.PartitionCount,
            WorkerId = options.WorkerId,
            MaxQueuePollingInterval = options.MaxQueuePollingInterval,
            ControlQueueVisibilityTimeout = options.ControlQueueVisibilityTimeout,
            WorkItemQueueVisibilityTimeout = options.WorkItemQueueVisibilityTimeout,
            MaxConcurrentTaskActivityWorkItems = options.MaxConcurrentActivities,
            ExtendedSessionsEnabled = options.ExtendedSessions,
            ExtendedSessionIdleTimeout = TimeSpan.FromSeconds(30),
            // One app per hub: the app lease only matters for blue/green deployments of several apps on one hub.
            UseAppLease = false,
        };
        return new AzureStorageOrchestrationService(settings);
    }

    /// <summary>The step types of this build. evaluate-needle, evaluate-domain-loss and report are not among them yet.</summary>
    public static StepRegistry DefaultSteps(EngineServices services) =>
        new StepRegistry()
            .Register(PrepareDataStep.Create(services))
            .Register(GpuJobStep.Create(services, "train"))
            .Register(GpuJobStep.Create(services, "evaluate-needle"))
            .Register(GpuJobStep.Create(services, "evaluate-domain-loss"))
            .Register(GpuJobStep.Create(services, "report"));

    /// <summary>Creates the hub if needed and starts a worker. <paramref name="configure"/> may add or replace step types.</summary>
    public static async Task<EngineHost> StartAsync(StorageConnection connection, EngineOptions options,
        Action<StepRegistry, EngineServices>? configure = null, CancellationToken cancellationToken = default)
    {
        var store = await BlobArtifactStore.OpenAsync(connection, options.ContainerName).ConfigureAwait(false);
        var service = CreateService(connection, options);
        await service.CreateIfNotExistsAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        var services = new EngineServices(store, options, new TaskHubClient(service));
        var registry = DefaultSteps(services);
        configure?.Invoke(registry, services);

        var worker = new TaskHubWorker(service) { ErrorPropagationMode = ErrorPropagationMode.UseFailureDetails };
        foreach (var version in SupportedWorkflowVersions)
        {
            worker.AddTaskOrchestrations(new FactoryCreator<TaskOrchestration>(ExperimentOrchestration.Name, OrchestrationVersion(version),
                () => new ExperimentOrchestration(registry)));
        }

        var activities = new List<ActivityRegistration>
        {
            new(ActivityNames.UpdateRun, new UpdateRunActivity(services)),
            new(ActivityNames.LookupCache, new LookupCacheActivity(services)),
            new(ActivityNames.RunFinished, new RunFinishedActivity(services)),
        };
        activities.AddRange(registry.Activities.Where(a => activities.All(x => x.Name != a.Name)));
        foreach (var a in activities)
        {
            worker.AddTaskActivities(new NameValueObjectCreator<TaskActivity>(a.Name, ActivityNames.Version, a.Activity));
        }

        await worker.StartAsync().ConfigureAwait(false);
        return new EngineHost(worker, service, services, registry);
    }

    public static string OrchestrationVersion(int workflowVersion) => workflowVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Stops taking work; in-flight work items are abandoned and picked up by another worker.</summary>
    public async ValueTask DisposeAsync()
    {
        await _worker.StopAsync(isForced: true).ConfigureAwait(false);
        _worker.Dispose();
    }

    private sealed class FactoryCreator<T> : ObjectCreator<T>
    {
        private readonly Func<T> _create;

        public FactoryCreator(string name, string version, Func<T> create)
        {
            Name = name;
            Version = version;
            _create = create;
        }

        public override T Create() => _create();
    }
}
