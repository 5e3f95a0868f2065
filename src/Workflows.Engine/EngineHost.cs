using DurableTask.AzureStorage;
using DurableTask.Core;
using Workflows.Artifacts;
using Workflows.Artifacts.Store;
using Workflows.Engine.Activities;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Engine.Telemetry;

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

    private int _stopped;

    private EngineHost(TaskHubWorker worker, AzureStorageOrchestrationService service, EngineServices services, StepRegistry registry, InFlightWork inFlight)
    {
        _worker = worker;
        InFlight = inFlight;
        Service = service;
        Services = services;
        Steps = registry;
    }

    public AzureStorageOrchestrationService Service { get; }
    public EngineServices Services { get; }
    public StepRegistry Steps { get; }
    public EngineClient Client => new(Service, Services.Store, Services.Options);

    /// <summary>Activities running in this process right now (what a graceful stop waits for).</summary>
    public InFlightWork InFlight { get; }

    /// <summary>The DTFx settings of issue 4 §5 (see <see cref="EngineOptions"/> for why each differs from the default).</summary>
    public static AzureStorageOrchestrationService CreateService(StorageConnection connection, EngineOptions options) =>
        new(CreateSettings(connection, options));

    /// <summary>The DTFx settings <see cref="CreateService"/> uses (exposed so tests can check the storage provider without a network).</summary>
    public static AzureStorageOrchestrationServiceSettings CreateSettings(StorageConnection connection, EngineOptions options)
    {
        var settings = new AzureStorageOrchestrationServiceSettings
        {
            // Entra ID (WF_STORAGE_ACCOUNT_URL) needs all three service endpoints; a connection string carries them.
            StorageAccountClientProvider = connection.Credential is { } credential
                ? new StorageAccountClientProvider(connection.BlobEndpoint, connection.QueueEndpoint!, connection.TableEndpoint!, credential)
                : new StorageAccountClientProvider(connection.ConnectionString),
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
        if (options.LoggerFactory is { } loggers)
        {
            settings.LoggerFactory = loggers;
        }

        return settings;
    }

    /// <summary>The step types of this build: one handler per contract in <see cref="Workflows.Experiments.Templates.StepContracts"/>.</summary>
    public static StepRegistry DefaultSteps(EngineServices services) =>
        new StepRegistry()
            .Register(PrepareDataStep.Create(services))
            .Register(JobStep.Create(services, new TrainJobHandler()))
            .Register(JobStep.Create(services, new NeedleJobHandler()))
            .Register(JobStep.Create(services, new DomainLossJobHandler()))
            .Register(JobStep.Create(services, new ReportJobHandler()));

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

        var worker = new TaskHubWorker(service, options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance)
        {
            ErrorPropagationMode = ErrorPropagationMode.UseFailureDetails,
        };
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
        var inFlight = new InFlightWork();
        var cancelled = new Hosting.CancelledRuns(services.Runs);
        foreach (var a in activities)
        {
            // Every activity is wrapped once here: spans and metrics, the in-flight count a graceful stop waits on, and
            // the tag that lets the orchestration tell its reply from a stray one (ActivityReply).
            var instrumented = new InstrumentedActivity(a.Name, a.Activity, inFlight, a.Name == ActivityNames.UpdateRun ? null : id => cancelled.IsCancelledAsync(id));
            worker.AddTaskActivities(new NameValueObjectCreator<TaskActivity>(a.Name, ActivityNames.Version, new TaggedActivity(a.Name, instrumented)));
        }

        await worker.StartAsync().ConfigureAwait(false);
        return new EngineHost(worker, service, services, registry, inFlight);
    }

    public static string OrchestrationVersion(int workflowVersion) => workflowVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Graceful stop (SIGTERM): stop fetching work, release the control-queue partition leases (DTFx's graceful stop,
    /// which itself waits up to ~8 s for running work items), then wait up to <paramref name="grace"/> for the
    /// activities still running here to finish and report their results. Whatever is still running then is handed
    /// back: the process exits, its dequeued messages become visible again after the work-item visibility timeout,
    /// and another worker re-runs them (activities are idempotent). Returns the number of activities handed back.
    /// </summary>
    public async Task<int> StopAsync(TimeSpan grace)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return 0;
        }

        var deadline = DateTime.UtcNow + grace;
        await _worker.StopAsync(isForced: false).ConfigureAwait(false);
        var left = deadline - DateTime.UtcNow;
        await InFlight.WaitIdleAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero).ConfigureAwait(false);
        var handedBack = InFlight.Count;
        _worker.Dispose();
        return handedBack;
    }

    /// <summary>Stops taking work; in-flight work items are abandoned and picked up by another worker.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

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
