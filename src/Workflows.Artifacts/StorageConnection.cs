using Azure;
using Azure.Storage.Blobs;

namespace Workflows.Artifacts;

/// <summary>Where a <see cref="StorageConnection"/> came from (shown to users; never the secret itself).</summary>
public enum StorageConnectionSource
{
    /// <summary><c>WF_STORAGE_CONNECTION_STRING</c> was set.</summary>
    Environment,
    /// <summary>A local Azurite (started by <c>wf</c>, the tests or <c>scripts/azurite.sh</c>) with the well-known development account.</summary>
    LocalAzurite,
    /// <summary>Given explicitly by the caller.</summary>
    Explicit,
}

/// <summary>
/// How to reach the storage account that holds artifacts (and, for the engine, DTFx's queues and tables). Resolution:
/// the environment variable <c>WF_STORAGE_CONNECTION_STRING</c> when set, otherwise a local Azurite with the
/// development account <c>devstoreaccount1</c> (see <see cref="Azurite.StorageSession"/>, which starts one when needed).
/// </summary>
/// <remarks>
/// The connection string holds the account key. It is exposed only through <see cref="ConnectionString"/> for the
/// SDK constructors that need it; <see cref="ToString"/>, <see cref="Description"/> and every error message built
/// here name the account and blob endpoint only.
/// </remarks>
public sealed class StorageConnection
{
    public const string ConnectionStringVariable = "WF_STORAGE_CONNECTION_STRING";

    /// <summary>Azurite's development account name (public, documented by Microsoft).</summary>
    public const string DevelopmentAccountName = "devstoreaccount1";

    /// <summary>Azurite's development account key: public and documented by Microsoft, not a secret.</summary>
    public const string DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private StorageConnection(string connectionString, StorageConnectionSource source, string accountName, Uri blobEndpoint)
    {
        ConnectionString = connectionString;
        Source = source;
        AccountName = accountName;
        BlobEndpoint = blobEndpoint;
    }

    /// <summary>The full connection string, including the key. Pass it to SDK constructors; never print or log it.</summary>
    public string ConnectionString { get; }

    public StorageConnectionSource Source { get; }
    public string AccountName { get; }

    /// <summary>The blob service endpoint without any query string (so a SAS token never shows up in messages).</summary>
    public Uri BlobEndpoint { get; }

    public bool IsLocalAzurite => Source == StorageConnectionSource.LocalAzurite;

    /// <summary>Safe to print: account, endpoint and source, no key.</summary>
    public string Description => $"storage account '{AccountName}' at {BlobEndpoint} ({SourceText})";

    public override string ToString() => Description;

    private string SourceText => Source switch
    {
        StorageConnectionSource.Environment => $"from {ConnectionStringVariable}",
        StorageConnectionSource.LocalAzurite => "local Azurite",
        _ => "explicit connection string",
    };

    /// <summary>
    /// The configured connection from the environment, or null when none is configured (then the caller uses a local
    /// Azurite). Throws <see cref="StorageConfigurationException"/> when the variable is set but unusable.
    /// </summary>
    public static StorageConnection? FromEnvironment(Func<string, string?>? getEnvironmentVariable = null)
    {
        getEnvironmentVariable ??= Environment.GetEnvironmentVariable;
        var value = getEnvironmentVariable(ConnectionStringVariable);
        return string.IsNullOrWhiteSpace(value) ? null : Parse(value.Trim(), StorageConnectionSource.Environment);
    }

    /// <summary>A connection string given by the caller (validated; errors never echo it).</summary>
    public static StorageConnection FromConnectionString(string connectionString) =>
        Parse(connectionString, StorageConnectionSource.Explicit);

    /// <summary>The development account on a local Azurite listening on 127.0.0.1 at the given ports.</summary>
    public static StorageConnection ForLocalAzurite(int blobPort = 10000, int queuePort = 10001, int tablePort = 10002)
    {
        var cs = "DefaultEndpointsProtocol=http;" +
                 $"AccountName={DevelopmentAccountName};AccountKey={DevelopmentAccountKey};" +
                 $"BlobEndpoint=http://127.0.0.1:{blobPort}/{DevelopmentAccountName};" +
                 $"QueueEndpoint=http://127.0.0.1:{queuePort}/{DevelopmentAccountName};" +
                 $"TableEndpoint=http://127.0.0.1:{tablePort}/{DevelopmentAccountName};";
        return Parse(cs, StorageConnectionSource.LocalAzurite);
    }

    /// <summary>A blob service client for this account. The SDK's default service version is kept (see docs/artifacts.md).</summary>
    public BlobServiceClient CreateBlobServiceClient(BlobClientOptions? options = null) =>
        new(ConnectionString, options ?? new BlobClientOptions());

    private static StorageConnection Parse(string connectionString, StorageConnectionSource source)
    {
        var origin = source == StorageConnectionSource.Environment ? ConnectionStringVariable : "The storage connection string";
        var parts = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new StorageConfigurationException($"{origin} is not a valid Azure Storage connection string: every part must look like Name=value (values are not shown).");
            }
            parts[part[..eq]] = part[(eq + 1)..];
        }
        if (parts.TryGetValue("UseDevelopmentStorage", out var dev) && dev.Equals("true", StringComparison.OrdinalIgnoreCase))
        {
            var local = ForLocalAzurite();
            return new StorageConnection(local.ConnectionString, source, local.AccountName, local.BlobEndpoint);
        }
        var hasKey = parts.ContainsKey("AccountKey") || parts.ContainsKey("SharedAccessSignature");
        if (!hasKey)
        {
            throw new StorageConfigurationException($"{origin} has neither AccountKey nor SharedAccessSignature (values are not shown).");
        }
        if (!parts.ContainsKey("BlobEndpoint") && !parts.ContainsKey("AccountName"))
        {
            throw new StorageConfigurationException($"{origin} names neither AccountName nor BlobEndpoint (values are not shown).");
        }
        BlobServiceClient client;
        try
        {
            client = new BlobServiceClient(connectionString);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            // The SDK's message may quote parts of the string (the key among them): report the kind of problem only.
            throw new StorageConfigurationException($"{origin} was rejected by the Azure SDK ({e.GetType().Name}); check its Name=value parts (values are not shown).");
        }
        var endpoint = new Uri(client.Uri.GetLeftPart(UriPartial.Path));
        return new StorageConnection(connectionString, source, client.AccountName ?? parts.GetValueOrDefault("AccountName") ?? "?", endpoint);
    }

    /// <summary>Turns a service error into a message that says what to fix, without the connection string.</summary>
    internal static StorageConfigurationException Explain(RequestFailedException e, StorageConnection connection, string doing)
    {
        var hint = e.Status switch
        {
            403 => "the account key or SAS was refused (AuthenticationFailed): check the key in " + ConnectionStringVariable,
            400 when e.Message.Contains("API version", StringComparison.OrdinalIgnoreCase) =>
                "the emulator rejected the SDK's API version: start Azurite with --skipApiVersionCheck (scripts/azurite.sh and wf do)",
            _ => $"the service answered {e.Status} {e.ErrorCode}",
        };
        return new StorageConfigurationException($"Failed {doing} on {connection.Description}: {hint}.", e);
    }

    internal static StorageConfigurationException Unreachable(StorageConnection connection, Exception e) =>
        new($"Cannot reach {connection.Description}: {(e.InnerException ?? e).Message.TrimEnd('.')}." +
            (connection.IsLocalAzurite ? " Is Azurite running? (scripts/azurite.sh start, or unset the connection string and let wf start it)" : ""), e);
}

/// <summary>Storage is configured wrongly or unreachable; the message says what to fix and never contains secrets.</summary>
public sealed class StorageConfigurationException : Exception
{
    public StorageConfigurationException(string message) : base(message) { }
    public StorageConfigurationException(string message, Exception inner) : base(message, inner) { }
}
