namespace Workflows.Artifacts.Azurite;

/// <summary>Options for <see cref="StorageSession.OpenAsync"/>.</summary>
public sealed record StorageSessionOptions
{
    /// <summary>wf's work directory; a managed Azurite keeps its data in <c>{WorkDirectory}/azurite</c>.</summary>
    public string WorkDirectory { get; init; } = ".wf";

    /// <summary>Ports of the local Azurite (Azurite's own defaults, so Storage Explorer and scripts/azurite.sh agree).</summary>
    public int BlobPort { get; init; } = 10000;
    public int QueuePort { get; init; } = 10001;
    public int TablePort { get; init; } = 10002;

    public bool InstallIfMissing { get; init; }
    public TextWriter? Log { get; init; }

    /// <summary>For tests; default reads the process environment.</summary>
    public Func<string, string?>? GetEnvironmentVariable { get; init; }
}

/// <summary>
/// The storage <c>wf</c> works against for one command: the account configured in <c>WF_STORAGE_CONNECTION_STRING</c>,
/// or else a local Azurite — reused when one already answers on the blob port (e.g. <c>scripts/azurite.sh start</c>),
/// started (and, on dispose, stopped) by this session otherwise.
/// </summary>
public sealed class StorageSession : IAsyncDisposable
{
    private StorageSession(StorageConnection connection, AzuriteProcess? startedAzurite)
    {
        Connection = connection;
        StartedAzurite = startedAzurite;
    }

    public StorageConnection Connection { get; }

    /// <summary>The Azurite this session started and will stop; null when it uses configured storage or a running Azurite.</summary>
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
        if (await IsAzuriteListeningAsync(options.BlobPort, cancellationToken).ConfigureAwait(false))
        {
            var running = StorageConnection.ForLocalAzurite(options.BlobPort, options.QueuePort, options.TablePort);
            options.Log?.WriteLine($"Using the Azurite already running on 127.0.0.1:{options.BlobPort}.");
            return new StorageSession(running, null);
        }
        var azurite = await AzuriteProcess.StartAsync(new AzuriteOptions
        {
            DataDirectory = Path.GetFullPath(Path.Combine(options.WorkDirectory, "azurite")),
            BlobPort = options.BlobPort,
            QueuePort = options.QueuePort,
            TablePort = options.TablePort,
            InstallIfMissing = options.InstallIfMissing,
            Log = options.Log,
        }, cancellationToken).ConfigureAwait(false);
        return new StorageSession(azurite.Connection, azurite);
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
            await StartedAzurite.DisposeAsync().ConfigureAwait(false);
        }
    }
}
