using System.Net;
using System.Net.Sockets;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Workflows.Artifacts;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine.Telemetry;

namespace Workflows.Engine.Tests;

/// <summary>
/// Storage that cannot be used is reported as such, naming the endpoint and never a key: unreachable, a wiped store
/// (container gone), a run whose record vanished; and in the workers' JSON log lines, one line with a storage field.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class StorageFailureTests(EngineFixture engine)
{
    [Fact]
    public async Task Unreachable_storage_names_the_endpoint_and_what_was_being_done_and_never_the_key()
    {
        var port = FreePort();
        var connection = StorageConnection.FromConnectionString(
            $"DefaultEndpointsProtocol=http;AccountName={StorageConnection.DevelopmentAccountName};AccountKey={StorageConnection.DevelopmentAccountKey};BlobEndpoint=http://127.0.0.1:{port}/{StorageConnection.DevelopmentAccountName};");
        var options = new BlobClientOptions();
        options.Retry.MaxRetries = 1;
        options.Retry.Delay = TimeSpan.FromMilliseconds(10);
        var store = new BlobArtifactStore(new BlobServiceClient(connection.ConnectionString, options).GetBlobContainerClient("workflows"));

        var e = (await FluentActions.Awaiting(() => new RunRecordStore(store).GetAsync("some-run")).Should().ThrowAsync<StorageUnavailableException>()).Which;

        e.Message.Should().Contain($"127.0.0.1:{port}").And.Contain("container 'workflows'").And.Contain("reading 'runs/some-run/run.json'")
            .And.Contain("does not answer").And.Contain("tries");
        e.Message.Should().NotContain(StorageConnection.DevelopmentAccountKey).And.NotContain("AccountKey");
    }

    [Fact]
    public async Task A_wiped_store_and_a_vanished_run_record_are_reported_as_such()
    {
        var options = WorkerProgram.KillTestOptions(EngineOptions.UniqueHubName("wfwipe"), "w-" + Guid.NewGuid().ToString("N")[..20], engine.CacheDirectory);
        var client = await EngineClient.ConnectAsync(engine.Connection, options);
        try
        {
            // No worker serves this hub: the runs stay submitted, which is all these reads need.
            var vanished = await client.SubmitAsync(engine.Request(EngineFixture.Step("a", EngineFixture.ItemsType, 1, "w")));
            await client.Store.DeleteAsync(RunRecordStore.RecordName(vanished));
            var missing = (await FluentActions.Awaiting(() => client.GetAsync(vanished)).Should().ThrowAsync<RunRecordMissingException>()).Which;
            missing.Message.Should().Contain(vanished).And.Contain("wiped or reset").And.Contain(engine.Connection.BlobEndpoint.Authority);

            var wiped = await client.SubmitAsync(engine.Request(EngineFixture.Step("a", EngineFixture.ItemsType, 1, "w2")));
            await new BlobContainerClient(engine.Connection.ConnectionString, options.ContainerName).DeleteAsync();
            var gone = (await FluentActions.Awaiting(() => client.GetAsync(wiped)).Should().ThrowAsync<StorageUnavailableException>()).Which;
            gone.Message.Should().Contain($"container '{options.ContainerName}'").And.Contain("wiped or reset").And.Contain(engine.Connection.BlobEndpoint.Authority);
            gone.Message.Should().NotContain("AccountKey");
        }
        finally
        {
            await client.DeleteHubAsync();
        }
    }

    [Fact]
    public void A_storage_failure_in_a_worker_log_is_one_line_naming_the_endpoint_without_a_stack_trace()
    {
        var captured = new StringWriter();
        using (var loggers = TelemetryExport.CreateLoggerFactory(LogLevel.Information, captured, storage: () => "storage account 'devstoreaccount1' at http://127.0.0.1:10000/devstoreaccount1"))
        {
            Exception failure;
            try
            {
                throw new AggregateException("Retry failed after 4 tries.", new HttpRequestException("Connection refused (127.0.0.1:10000)"), new HttpRequestException("Connection refused (127.0.0.1:10000)"));
            }
            catch (AggregateException e)
            {
                failure = e;
            }

            // DTFx puts stack traces into its messages; a worker's log keeps one line per event.
            loggers.CreateLogger("DurableTask.AzureStorage").LogError(failure, "Partition manager failed: {Details}", failure.ToString());
        }

        var line = captured.ToString().TrimEnd();
        line.Split('\n').Should().ContainSingle("one JSON object per line");
        line.Should().Contain("\"storage\":\"storage account 'devstoreaccount1' at http://127.0.0.1:10000/devstoreaccount1: it does not answer")
            .And.NotContain("   at ");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
