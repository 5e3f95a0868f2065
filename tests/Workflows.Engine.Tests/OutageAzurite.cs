using System.Diagnostics;
using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;

namespace Workflows.Engine.Tests;

/// <summary>
/// An Azurite of one test's own, persisting on disk, that the test can stop (SIGTERM: its data stays) and start again
/// on the same ports and data: a storage outage. Disposing stops it and deletes its data.
/// </summary>
internal sealed class OutageAzurite : IAsyncDisposable
{
    private readonly string _data;
    private readonly AzuriteInstallation _installation;
    private AzuriteProcess _azurite;

    private OutageAzurite(string data, AzuriteInstallation installation, AzuriteProcess azurite)
    {
        _data = data;
        _installation = installation;
        _azurite = azurite;
    }

    public StorageConnection Connection => _azurite.Connection;

    public static async Task<OutageAzurite> StartAsync()
    {
        var data = Path.Combine(Path.GetTempPath(), "wf-outage-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        var installation = AzuriteInstallation.Locate(AppContext.BaseDirectory);
        var azurite = await AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = data, Installation = installation, InstallIfMissing = true });
        return new OutageAzurite(data, installation, azurite);
    }

    /// <summary>Stops storage for <paramref name="length"/>, then starts it again on the same ports and data; returns when the outage began and how long it lasted.</summary>
    public async Task<(DateTimeOffset DownAt, TimeSpan Down)> OutageAsync(TimeSpan length)
    {
        var (blob, queue, table) = (_azurite.BlobPort, _azurite.QueuePort, _azurite.TablePort);
        await _azurite.DisposeAsync();
        var downAt = DateTimeOffset.UtcNow;
        var down = Stopwatch.StartNew();
        await Task.Delay(length); // the outage itself
        _azurite = await AzuriteProcess.StartAsync(new AzuriteOptions
        {
            DataDirectory = _data, Installation = _installation, BlobPort = blob, QueuePort = queue, TablePort = table,
        });
        return (downAt, down.Elapsed);
    }

    public async ValueTask DisposeAsync()
    {
        await _azurite.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }
}
