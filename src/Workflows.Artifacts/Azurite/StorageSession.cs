namespace Workflows.Artifacts.Azurite;

/// <summary>Options for <see cref="StorageSession.OpenAsync"/>.</summary>
public sealed record StorageSessionOptions
{
    /// <summary>
    /// wf's work directory; this store's Azurite keeps its data in <c>{WorkDirectory}/azurite/data</c> and its marker
    /// (<c>azurite.pid</c>, <c>azurite.ports</c>, as scripts/azurite.sh writes them) in <c>{WorkDirectory}/azurite</c>.
    /// Default: <c>.wf</c> in the nearest folder at or above the current one that has <c>.wf/</c> or <c>workflows/</c>
    /// (an experiments repository), else in the current folder.
    /// </summary>
    public string WorkDirectory { get; init; } = LocalAzurite.DefaultWorkDirectory(Directory.GetCurrentDirectory());

    /// <summary>Preferred ports (Azurite's own defaults, so Storage Explorer and scripts/azurite.sh agree); free ones are
    /// picked when another process holds them.</summary>
    public int BlobPort { get; init; } = 10000;
    public int QueuePort { get; init; } = 10001;
    public int TablePort { get; init; } = 10002;

    public bool InstallIfMissing { get; init; }
    public TextWriter? Log { get; init; }

    /// <summary>For tests; default reads the process environment.</summary>
    public Func<string, string?>? GetEnvironmentVariable { get; init; }

    /// <summary>For tests; default <see cref="AzuriteInstallation.Locate"/>.</summary>
    public AzuriteInstallation? Installation { get; init; }
}

/// <summary>
/// The storage <c>wf</c> works against for one command: the account configured in <c>WF_STORAGE_CONNECTION_STRING</c>,
/// or else this store's local Azurite — adopted when the one its marker names is running (started by another wf or by
/// scripts/azurite.sh for the same work directory), started (and, on dispose, stopped) by this session otherwise. An
/// Azurite that merely listens on 127.0.0.1:10000 is never adopted: it may be another checkout's store.
/// </summary>
public sealed class StorageSession : IAsyncDisposable
{
    private readonly string? _markerDirectory;

    private StorageSession(StorageConnection connection, AzuriteProcess? startedAzurite, string? markerDirectory = null)
    {
        Connection = connection;
        StartedAzurite = startedAzurite;
        _markerDirectory = markerDirectory;
    }

    public StorageConnection Connection { get; }

    /// <summary>The Azurite this session started and will stop; null when it uses configured storage or adopted this store's running Azurite.</summary>
    public AzuriteProcess? StartedAzurite { get; }

    public static async Task<StorageSession> OpenAsync(StorageSessionOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new StorageSessionOptions();
        var configured = StorageConnection.FromEnvironment(options.GetEnvironmentVariable);
        if (configured is not null)
        {
            options.Log?.WriteLine($"Using {configured.Description}.");
            return new StorageSession(configured, null);
        }

        var local = LocalAzurite.At(options.WorkDirectory);
        if (await local.RunningAsync(cancellationToken).ConfigureAwait(false) is { } marker)
        {
            options.Log?.WriteLine($"Using this store's Azurite (pid {marker.Pid}, 127.0.0.1:{marker.BlobPort}, data in {local.DataDirectory}).");
            return new StorageSession(StorageConnection.ForLocalAzurite(marker.BlobPort, marker.QueuePort, marker.TablePort), null);
        }

        local.DeleteMarker();
        var preferred = new[] { options.BlobPort, options.QueuePort, options.TablePort };
        var free = preferred.All(AzuriteProcess.IsPortFree);
        if (!free)
        {
            options.Log?.WriteLine(
                $"127.0.0.1:{options.BlobPort}-{options.TablePort} is taken by another process (another checkout's Azurite is not this store's): starting this store's own on free ports.");
        }

        var azurite = await AzuriteProcess.StartAsync(new AzuriteOptions
        {
            DataDirectory = local.DataDirectory,
            Installation = options.Installation,
            BlobPort = free ? options.BlobPort : 0,
            QueuePort = free ? options.QueuePort : 0,
            TablePort = free ? options.TablePort : 0,
            InstallIfMissing = options.InstallIfMissing,
            Log = options.Log,
        }, cancellationToken).ConfigureAwait(false);
        local.WriteMarker(new LocalAzuriteMarker(azurite.ProcessId, azurite.BlobPort, azurite.QueuePort, azurite.TablePort));
        return new StorageSession(azurite.Connection, azurite, local.Directory);
    }

    /// <summary>True when an Azurite blob service (recognised by its <c>Server: Azurite-Blob/…</c> header) answers on the port.</summary>
    public static async Task<bool> IsAzuriteListeningAsync(int blobPort, CancellationToken cancellationToken = default)
    {
        if (AzuriteProcess.IsPortFree(blobPort))
        {
            return false;
        }
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        try
        {
            using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{blobPort}/"), cancellationToken).ConfigureAwait(false);
            return response.Headers.Server.Any(s => s.Product?.Name.StartsWith("Azurite", StringComparison.OrdinalIgnoreCase) == true);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false; // something else holds the port; starting Azurite will report "port in use"
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (StartedAzurite is not null)
        {
            var pid = StartedAzurite.ProcessId;
            await StartedAzurite.DisposeAsync().ConfigureAwait(false);
            if (_markerDirectory is not null)
            {
                LocalAzurite.At(_markerDirectory, isAzuriteDirectory: true).DeleteMarker(pid);
            }
        }
    }
}
