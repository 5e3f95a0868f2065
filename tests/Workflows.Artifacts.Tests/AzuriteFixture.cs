using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Tests;

/// <summary>
/// One real Azurite for the whole test run: the one named by WF_TEST_AZURITE_CONNECTION_STRING (CI may start it with
/// scripts/azurite.sh), else a fresh one started from infra/azurite on free ports with a temporary data directory
/// (running `npm ci` first when node_modules is missing). Each test gets its own container.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    public const string ConnectionStringVariable = "WF_TEST_AZURITE_CONNECTION_STRING";

    private string? _dataDirectory;

    public StorageConnection Connection { get; private set; } = null!;

    /// <summary>The Azurite this fixture started; null when an external one is used.</summary>
    public AzuriteProcess? Process { get; private set; }

    public AzuriteInstallation Installation { get; } = AzuriteInstallation.Locate(AppContext.BaseDirectory);

    public async Task InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(ConnectionStringVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            Connection = StorageConnection.FromConnectionString(external);
            return;
        }
        _dataDirectory = Path.Combine(Path.GetTempPath(), "wf-artifacts-tests-" + Guid.NewGuid().ToString("N")[..8]);
        Process = await AzuriteProcess.StartAsync(new AzuriteOptions
        {
            DataDirectory = _dataDirectory,
            Installation = Installation,
            InstallIfMissing = true, // fails with a clear AzuriteNotInstalledException when npm is unavailable
            ReadyTimeout = TimeSpan.FromSeconds(90),
        });
        Connection = Process.Connection;
    }

    /// <summary>A store over a fresh, uniquely named container.</summary>
    public Task<BlobArtifactStore> NewStoreAsync(BlobArtifactStoreOptions? options = null) =>
        BlobArtifactStore.OpenAsync(Connection, "t-" + Guid.NewGuid().ToString("N")[..24], options);

    public async Task DisposeAsync()
    {
        if (Process is not null)
        {
            await Process.DisposeAsync();
        }
        if (_dataDirectory is not null && Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}
