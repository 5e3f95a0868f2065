using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Workflows.Artifacts;
using Workflows.Artifacts.Store;
using Workflows.Engine.Hosting;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Engine.Steps;
using Workflows.Engine.Telemetry;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Tests;

/// <summary>
/// <c>dotnet Workflows.Engine.Tests.dll worker|agent HUB CONTAINER CACHE</c> (storage from WF_TEST_WORKER_CONNECTION_STRING):
/// a real worker process with the test step types, or a real GPU agent process with a slow, checkpointing test job,
/// so tests can SIGKILL or SIGTERM them mid-run. Both run the same <see cref="WorkerLifetime"/> as <c>wf worker</c> /
/// <c>wf gpu-agent</c> (heartbeat from WF_HEARTBEAT_FILE, grace from WF_SHUTDOWN_GRACE_SECONDS). The test runner never calls Main.
/// Lines on stdout the tests read: "start TEST INDEX", "done TEST INDEX", "redelivered ACTIVITY", "job-start JOB from N", "exit N".
/// </summary>
public static class WorkerProgram
{
    public const string ConnectionVariable = "WF_TEST_WORKER_CONNECTION_STRING";

    /// <summary>Set (to anything) to run the agent with the shortest lease Azure allows (15 s), so lease-loss tests are quick.</summary>
    public const string ShortLeaseVariable = "WF_TEST_SHORT_LEASE";

    public const string SlowGpuType = "slow-gpu";
    public const string SlowItemsType = "slow-items";

    /// <summary>The shortest lease timings: 15 s lease, renewed every 2 s, work stopped after 6 s without a renewal, exit 4 s before the lapse.</summary>
    public static readonly GpuLeaseOptions ShortLease = new()
    {
        Duration = TimeSpan.FromSeconds(15),
        RenewEvery = TimeSpan.FromSeconds(2),
        StopWorkAfter = TimeSpan.FromSeconds(6),
        ExitMargin = TimeSpan.FromSeconds(4),
    };

    public static async Task<int> Main(string[] args)
    {
        if (args.Length != 4 || args[0] is not ("worker" or "agent"))
        {
            await Console.Error.WriteLineAsync("usage: worker|agent HUB CONTAINER CACHE");
            return 2;
        }

        using var stop = WorkerLifetime.OnTerminationSignal(out var signals);
        using var _ = signals;
        using var listener = ListenForRedeliveries();
        var connection = StorageConnection.FromConnectionString(Environment.GetEnvironmentVariable(ConnectionVariable)!);
        var options = KillTestOptions(args[1], args[2], args[3]);
        var role = args[0] == "worker" ? WorkerRole.Worker : WorkerRole.GpuAgent;
        var environment = WorkerEnvironment.Read(role);
        ShutdownReport report;
        if (role == WorkerRole.Worker)
        {
            await using var host = await EngineHost.StartAsync(connection, options, (registry, services) =>
            {
                registry.Register(FanOutArtifactStep.Create(services, FanOutArtifactStep.Contract(SlowItemsType), SlowItem));
                registry.Register(JobStep.Create(services, new SlowGpuHandler()));
            });
            Console.WriteLine("worker started");
            report = await WorkerLifetime.RunWorkerAsync(host, environment, stop.Token, Console.WriteLine);
        }
        else
        {
            var store = await BlobArtifactStore.OpenAsync(connection, options.ContainerName);
            var service = EngineHost.CreateService(connection, options);
            var services = new EngineServices(store, options, new DurableTask.Core.TaskHubClient(service));
            var agent = new GpuAgent(services, [new SlowGpuHandler()], Console.Out)
            {
                PollInterval = TimeSpan.FromMilliseconds(500),
                Lease = Environment.GetEnvironmentVariable(ShortLeaseVariable) is null ? new GpuLeaseOptions() : ShortLease,
            };
            Console.WriteLine($"agent started {agent.AgentId}");
            report = await WorkerLifetime.RunAgentAsync(agent, store, environment, stop.Token, Console.WriteLine);
        }

        Console.WriteLine($"exit handed-back={report.HandedBack}");
        return 0;
    }

    public static EngineOptions KillTestOptions(string hub, string container, string cache) => new()
    {
        TaskHubName = hub,
        ContainerName = container,
        CacheDirectory = cache,
        PartitionCount = 1,
        WorkItemQueueVisibilityTimeout = TimeSpan.FromSeconds(10),
        ControlQueueVisibilityTimeout = TimeSpan.FromSeconds(10),
        MaxConcurrentActivities = 4,
        GpuJobPollInterval = TimeSpan.FromSeconds(2),
    };

    /// <summary>Deterministic bytes, slowly (parameter delay_ms, default 400): a run of 32 items takes several seconds on one worker.</summary>
    public static async Task<byte[]> SlowItem(FanOutItem item, CancellationToken cancellationToken)
    {
        // The tests count these lines (from every process) to report how many executions were repeated.
        Console.WriteLine($"start {item.Parameters.Test} {item.Index}");
        await Task.Delay(item.Parameters.DelayMs, cancellationToken);
        Console.WriteLine($"done {item.Parameters.Test} {item.Index}");
        return Encoding.UTF8.GetBytes($"{item.Parameters.Test}: slow item {item.Index} of {item.Count}\n");
    }

    /// <summary>Prints a line for each activity DTFx delivered again (DeliveryAttempt &gt; 1), from the engine's own metric.</summary>
    private static MeterListener ListenForRedeliveries()
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == EngineTelemetry.Name && instrument.Name == "wf.activity.executions")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            string? activity = null;
            var redelivered = false;
            foreach (var tag in tags)
            {
                if (tag.Key == "activity")
                {
                    activity = tag.Value as string;
                }
                else if (tag.Key == "redelivered" && tag.Value is true)
                {
                    redelivered = true;
                }
            }

            if (redelivered)
            {
                Console.WriteLine($"redelivered {activity}");
            }
        });
        listener.Start();
        return listener;
    }
}

/// <summary>
/// A GPU job that "trains" for <c>seconds</c> one-second steps, checkpointing the step count in the agent's cache
/// folder (shared by the test's agents, like a checkpoint directory), so an agent taking the job over resumes. Prints
/// "job-start JOB from N" and, when its work ends for any reason, "job-stop JOB at N" with the time (ms since epoch).
/// </summary>
public sealed class SlowGpuHandler() : JobHandler<TestParameters>(TestContract)
{
    public static readonly StepContract TestContract = new(WorkerProgram.SlowGpuType, typeof(TestParameters), [], Gpu: true, "slow test GPU job");

    protected override async Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, TestParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        var checkpoint = Path.Combine(job.Services.Options.CacheDirectory, "slow-gpu", job.Job.KeyHash + ".step");
        Directory.CreateDirectory(Path.GetDirectoryName(checkpoint)!);
        var from = File.Exists(checkpoint) ? int.Parse(await File.ReadAllTextAsync(checkpoint, cancellationToken), CultureInfo.InvariantCulture) : 0;
        var id = $"{job.Job.RunId}.{job.Job.Step}";
        Console.WriteLine($"job-start {id} from {from}");
        var step = from;
        try
        {
            for (; step < parameters.Seconds; step++)
            {
                await Task.Delay(1000, cancellationToken);
                await File.WriteAllTextAsync(checkpoint, (step + 1).ToString(CultureInfo.InvariantCulture), CancellationToken.None);
                reportProgress($"step {step + 1}/{parameters.Seconds}");
            }
        }
        finally
        {
            Console.WriteLine($"job-stop {id} at {step} {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}");
        }

        File.WriteAllText(Path.Combine(job.OutputFolder("final-model"), "model.txt"), $"model of {parameters.Test} after {parameters.Seconds} steps\n");
        return new Dictionary<string, string>();
    }
}
