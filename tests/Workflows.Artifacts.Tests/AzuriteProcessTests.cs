using System.Net;
using System.Net.Sockets;
using System.Text;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Tests;

[Collection(AzuriteCollection.Name)]
public class AzuriteProcessTests(AzuriteFixture azurite)
{
    private static string TempDir() => Path.Combine(Path.GetTempPath(), "wf-azurite-test-" + Guid.NewGuid().ToString("N")[..8]);

    [Fact]
    public async Task A_port_in_use_is_reported_as_such()
    {
        var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        try
        {
            var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
            var dataDir = TempDir();
            var act = () => AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = dataDir, Installation = azurite.Installation, BlobPort = port });
            var error = (await act.Should().ThrowAsync<AzuritePortInUseException>()).Which;
            error.Port.Should().Be(port);
            error.Message.Should().Contain($"port {port}").And.Contain("already in use");
            Directory.Exists(dataDir).Should().BeFalse("nothing is created when the start is refused");
        }
        finally
        {
            squatter.Stop();
        }
    }

    [Fact]
    public async Task A_missing_installation_says_to_run_npm_ci()
    {
        var dir = TempDir();
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "package.json"), "{}");
        try
        {
            var act = () => AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = Path.Combine(dir, "data"), Installation = new AzuriteInstallation(dir) });
            (await act.Should().ThrowAsync<AzuriteNotInstalledException>()).Which.Message.Should().Contain("npm ci");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Data_persists_on_disk_across_a_clean_stop_and_restart()
    {
        var dataDir = TempDir();
        try
        {
            string sha;
            await using (var first = await AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = dataDir, Installation = azurite.Installation }))
            {
                var store = await BlobArtifactStore.OpenAsync(first.Connection, "persist");
                sha = (await store.PutAsync("kept.txt", new MemoryStream(Encoding.UTF8.GetBytes("still here")))).Sha256;
                (await StorageSession.IsAzuriteListeningAsync(first.BlobPort)).Should().BeTrue();
            }
            Directory.EnumerateFileSystemEntries(dataDir).Should().NotBeEmpty("persistence is on disk, not in memory");

            await using var second = await AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = dataDir, Installation = azurite.Installation });
            var again = await BlobArtifactStore.OpenAsync(second.Connection, "persist");
            await using var s = await again.OpenVerifiedAsync("kept.txt", sha);
            (await new StreamReader(s).ReadToEndAsync()).Should().Be("still here");
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }
    }

    [Fact]
    public async Task A_stopped_azurite_no_longer_listens()
    {
        var process = await AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = TempDir(), Installation = azurite.Installation });
        var port = process.BlobPort;
        (await StorageSession.IsAzuriteListeningAsync(port)).Should().BeTrue();
        await process.DisposeAsync();
        process.OutputTail.Should().Contain("Blob service successfully closed", "SIGTERM lets Azurite close its databases cleanly");
        process.HasExited.Should().BeTrue();
        AzuriteProcess.IsPortFree(port).Should().BeTrue();
        Directory.Delete(process.DataDirectory, recursive: true);
    }
}

[Collection(AzuriteCollection.Name)]
public class AzuriteApiVersionTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task An_azurite_without_skipApiVersionCheck_gives_a_clear_error()
    {
        // Started by hand without the flag, as a user's own Azurite might be.
        var port = FreePort();
        var dataDir = Path.Combine(Path.GetTempPath(), "wf-azurite-strict-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dataDir);
        var psi = new System.Diagnostics.ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { azurite.Installation.EntryScript, "--location", dataDir, "--blobPort", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--queuePort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), "--tablePort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), "--disableTelemetry" })
        {
            psi.ArgumentList.Add(a);
        }
        using var node = System.Diagnostics.Process.Start(psi)!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (AzuriteProcess.IsPortFree(port) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
            var connection = StorageConnection.FromConnectionString(StorageConnection.ForLocalAzurite(port, 1, 2).ConnectionString);
            var act = () => BlobArtifactStore.OpenAsync(connection, "strict");
            (await act.Should().ThrowAsync<StorageConfigurationException>()).Which.Message
                .Should().Contain("--skipApiVersionCheck").And.NotContain(StorageConnection.DevelopmentAccountKey);
        }
        finally
        {
            node.Kill(entireProcessTree: true);
            await node.WaitForExitAsync();
            Directory.Delete(dataDir, recursive: true);
        }
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
