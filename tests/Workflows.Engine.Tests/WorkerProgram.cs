using System.Text;
using Workflows.Artifacts;
using Workflows.Engine.Steps;

namespace Workflows.Engine.Tests;

/// <summary>
/// <c>dotnet Workflows.Engine.Tests.dll worker HUB CONTAINER CACHE</c> (storage from WF_TEST_WORKER_CONNECTION_STRING):
/// a real worker process with the test step types, so a test can SIGKILL it mid-run. The test runner never calls Main.
/// </summary>
public static class WorkerProgram
{
    public const string ConnectionVariable = "WF_TEST_WORKER_CONNECTION_STRING";

    public static async Task<int> Main(string[] args)
    {
        if (args.Length != 4 || args[0] != "worker")
        {
            await Console.Error.WriteLineAsync("usage: worker HUB CONTAINER CACHE");
            return 2;
        }

        var connection = StorageConnection.FromConnectionString(Environment.GetEnvironmentVariable(ConnectionVariable)!);
        await using var host = await EngineHost.StartAsync(connection, KillTestOptions(args[1], args[2], args[3]),
            (registry, services) => registry.Register(FanOutArtifactStep.Create(services, "slow-items", "1", SlowItem)));
        Console.WriteLine("worker started");
        await Task.Delay(Timeout.Infinite);
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
    };

    /// <summary>Deterministic bytes, slowly: a run of 32 items takes several seconds on one worker.</summary>
    public static async Task<byte[]> SlowItem(FanOutItem item, CancellationToken cancellationToken)
    {
        // The test counts these lines (from both processes) to report how many executions were repeated.
        Console.WriteLine($"start {item.Parameters["test"]} {item.Index}");
        await Task.Delay(400, cancellationToken);
        return Encoding.UTF8.GetBytes($"{item.Parameters["test"]}: slow item {item.Index} of {item.Count}\n");
    }
}
