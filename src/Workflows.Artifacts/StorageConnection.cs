using Azure;
using Azure.Core;
using Azure.Identity;
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
    /// <summary><c>WF_STORAGE_ACCOUNT_URL</c> was set: Entra ID tokens (<c>DefaultAzureCredential</c>: workload identity, managed identity, az login), no key.</summary>
    ManagedIdentity,
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

    /// <summary>The blob endpoint (https://ACCOUNT.blob.core.windows.net/) for Entra ID access; the manifests' workload-identity overlay sets it.</summary>
    public const string AccountUrlVariable = "WF_STORAGE_ACCOUNT_URL";

    /// <summary>Queue and table endpoints, needed only when they cannot be derived from the blob endpoint (path-style URLs such as an emulator's).</summary>
    public const string QueueUrlVariable = "WF_STORAGE_QUEUE_URL";
    public const string TableUrlVariable = "WF_STORAGE_TABLE_URL";

    /// <summary>Azurite's development account name (public, documented by Microsoft).</summary>
    public const string DevelopmentAccountName = "devstoreaccount1";

    /// <summary>Azurite's development account key: public and documented by Microsoft, not a secret.</summary>
    public const string DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string? _connectionString;

    private StorageConnection(string connectionString, StorageConnectionSource source, string accountName, Uri blobEndpoint)
    {
        _connectionString = connectionString;
        Source = source;
        AccountName = accountName;
        BlobEndpoint = blobEndpoint;
    }

    private StorageConnection(TokenCredential credential, StorageConnectionSource source, string accountName, Uri blobEndpoint, Uri queueEndpoint, Uri tableEndpoint)
    {
        Credential = credential;
        Source = source;
        AccountName = accountName;
        BlobEndpoint = blobEndpoint;
        QueueEndpoint = queueEndpoint;
        TableEndpoint = tableEndpoint;
    }

    /// <summary>The full connection string, including the key. Pass it to SDK constructors; never print or log it.</summary>
    /// <exception cref="InvalidOperationException">This connection uses an Entra ID token credential and has no connection string.</exception>
    public string ConnectionString => _connectionString
        ?? throw new InvalidOperationException($"{Description} authenticates with an Entra ID token credential; it has no connection string.");

    /// <summary>The Entra ID credential when the account is reached by identity (<see cref="UsesTokenCredential"/>), else null.</summary>
    public TokenCredential? Credential { get; }

    public bool UsesTokenCredential => Credential is not null;

    /// <summary>Queue and table endpoints of a token-credential connection (DTFx needs all three services); null for connection strings.</summary>
    public Uri? QueueEndpoint { get; }
    public Uri? TableEndpoint { get; }

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
        StorageConnectionSource.ManagedIdentity => $"Entra ID token from {AccountUrlVariable}",
        _ => "explicit connection string",
    };

    /// <summary>
    /// The configured connection from the environment, or null when none is configured (then the caller uses a local
    /// Azurite). Throws <see cref="StorageConfigurationException"/> when the variable is set but unusable.
    /// </summary>
    /// <remarks>
    /// Selection: <c>WF_STORAGE_CONNECTION_STRING</c> (shared key or SAS) or <c>WF_STORAGE_ACCOUNT_URL</c> (Entra ID via
    /// <paramref name="createCredential"/>, by default <see cref="DefaultAzureCredential"/>: the workload-identity token
    /// the AKS webhook injects, a VM's managed identity, or a developer's az login). Both set is refused rather than
    /// silently preferring one: an operator moving to identity must be sure the key is no longer what is used.
    /// </remarks>
    public static StorageConnection? FromEnvironment(Func<string, string?>? getEnvironmentVariable = null, Func<TokenCredential>? createCredential = null)
    {
        getEnvironmentVariable ??= Environment.GetEnvironmentVariable;
        var value = getEnvironmentVariable(ConnectionStringVariable);
        var url = getEnvironmentVariable(AccountUrlVariable);
        if (!string.IsNullOrWhiteSpace(value) && !string.IsNullOrWhiteSpace(url))
        {
            throw new StorageConfigurationException(
                $"Both {ConnectionStringVariable} and {AccountUrlVariable} are set: set only one (the connection string uses the account key, the URL an Entra ID identity).");
        }

        if (!string.IsNullOrWhiteSpace(url))
        {
            var credential = (createCredential ?? (() => new DefaultAzureCredential()))();
            return FromAccountUrl(url.Trim(), credential, getEnvironmentVariable(QueueUrlVariable), getEnvironmentVariable(TableUrlVariable),
                StorageConnectionSource.ManagedIdentity);
        }

        return string.IsNullOrWhiteSpace(value) ? null : Parse(value.Trim(), StorageConnectionSource.Environment);
    }

    /// <summary>
    /// An account reached with an Entra ID token: the blob endpoint, and the queue and table endpoints derived from it
    /// (<c>ACCOUNT.blob.</c> becomes <c>ACCOUNT.queue.</c> / <c>ACCOUNT.table.</c>) unless given.
    /// </summary>
    public static StorageConnection FromAccountUrl(string blobUrl, TokenCredential credential, string? queueUrl = null, string? tableUrl = null,
        StorageConnectionSource source = StorageConnectionSource.Explicit)
    {
        ArgumentNullException.ThrowIfNull(credential);
        var blob = ParseEndpoint(blobUrl, AccountUrlVariable);
        var queue = string.IsNullOrWhiteSpace(queueUrl) ? DeriveEndpoint(blob, "queue", QueueUrlVariable) : ParseEndpoint(queueUrl.Trim(), QueueUrlVariable);
        var table = string.IsNullOrWhiteSpace(tableUrl) ? DeriveEndpoint(blob, "table", TableUrlVariable) : ParseEndpoint(tableUrl.Trim(), TableUrlVariable);
        return new StorageConnection(credential, source, AccountNameOf(blob), blob, queue, table);
    }

    private static Uri ParseEndpoint(string url, string variable)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
        {
            throw new StorageConfigurationException($"{variable} must be an absolute https:// URL such as https://ACCOUNT.blob.core.windows.net/.");
        }

        if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.UserInfo))
        {
            // A SAS token in the URL would be a secret in a ConfigMap; identity access needs none (values are not shown).
            throw new StorageConfigurationException($"{variable} must not carry a query string or user info (a SAS belongs in {ConnectionStringVariable}, never in a URL setting; values are not shown).");
        }

        if (uri.Scheme == Uri.UriSchemeHttp && !uri.IsLoopback)
        {
            // Bearer tokens over plain HTTP would be readable on the wire; the SDK refuses them as well.
            throw new StorageConfigurationException($"{variable} must use https (plain http is accepted only for a loopback emulator).");
        }

        return new Uri(uri.GetLeftPart(UriPartial.Path));
    }

    private static Uri DeriveEndpoint(Uri blob, string service, string variable)
    {
        var labels = blob.Host.Split('.');
        if (labels.Length < 3 || labels[1] != "blob")
        {
            throw new StorageConfigurationException(
                $"Cannot derive the {service} endpoint from {AccountUrlVariable} (not of the form https://ACCOUNT.blob.<suffix>/): set {variable} as well.");
        }

        labels[1] = service;
        return new UriBuilder(blob) { Host = string.Join('.', labels) }.Uri;
    }

    private static string AccountNameOf(Uri blob) =>
        blob.Host.Split('.') is { Length: >= 3 } labels && labels[1] == "blob"
            ? labels[0]
            : blob.AbsolutePath.Trim('/').Split('/')[0] is { Length: > 0 } pathAccount ? pathAccount : blob.Host;

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
        Credential is not null
            ? new BlobServiceClient(BlobEndpoint, Credential, options ?? new BlobClientOptions())
            : new BlobServiceClient(ConnectionString, options ?? new BlobClientOptions());

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
            403 when connection.UsesTokenCredential =>
                "the identity was refused: it needs the Storage Blob, Queue and Table Data Contributor roles on the account (role assignments can take minutes to apply)",
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
