using Azure.Core;
using Azure.Identity;
using Microsoft.Extensions.Logging;
using Workflows.Artifacts;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine.Hosting;
using Workflows.Engine.Telemetry;

namespace Workflows.Engine.Tests;

/// <summary>Configuration by environment (the names the Kubernetes manifests set), storage selection, secrets never shown.</summary>
public sealed class ConfigurationTests
{
    // A syntactically valid but fake key; the tests look for it (and its parts) in every message.
    private const string FakeKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbC0xMjM0NTY3ODkwYWJjZGVmZ2hpams=";
    private const string FakeConnectionString =
        "DefaultEndpointsProtocol=https;AccountName=wfprodacct;AccountKey=" + FakeKey + ";EndpointSuffix=core.windows.net";

    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    private static TokenCredential FakeCredential() => new ClientSecretCredential("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", "not-a-secret");

    [Fact]
    public void Worker_environment_reads_the_variables_the_configmap_sets_and_keeps_local_defaults_when_unset()
    {
        var configMap = Env(("WF_TASK_HUB", "wf"), ("WF_ARTIFACTS_CONTAINER", "artifacts"), ("WF_REPORTS_CONTAINER", "reports"),
            ("WF_LOG_LEVEL", "Warning"), ("WF_HEARTBEAT_FILE", "/tmp/wf/heartbeat"), ("WF_WORK_DIR", "/var/lib/wf"), ("WF_DATA_CACHE", "/var/cache/wf"));

        var worker = WorkerEnvironment.Read(WorkerRole.Worker, configMap);
        worker.TaskHub.Should().Be("wf");
        worker.ArtifactsContainer.Should().Be("artifacts");
        worker.ReportsContainer.Should().Be("reports");
        worker.LogLevel.Should().Be(LogLevel.Warning);
        worker.HeartbeatFile.Should().Be("/tmp/wf/heartbeat");
        worker.CacheDirectory.Should().Be("/var/lib/wf/cache", "worker pods mount only /tmp and WF_WORK_DIR");
        worker.ShutdownGrace.Should().BeLessThan(TimeSpan.FromSeconds(120), "inside the worker's terminationGracePeriodSeconds");

        var agent = WorkerEnvironment.Read(WorkerRole.GpuAgent, configMap);
        agent.CacheDirectory.Should().Be("/var/cache/wf", "the GPU agent keeps its verified data cache there");
        agent.ShutdownGrace.Should().BeLessThan(TimeSpan.FromSeconds(600)).And.BeGreaterThan(TimeSpan.FromSeconds(120));

        var local = WorkerEnvironment.Read(WorkerRole.Worker, Env());
        local.Should().BeEquivalentTo(new WorkerEnvironment(), "a developer's box needs no variable");
        local.ArtifactsContainer.Should().Be("workflows");
    }

    [Theory]
    [InlineData("WF_TASK_HUB", "my-hub")]
    [InlineData("WF_TASK_HUB", "1hub")]
    [InlineData("WF_ARTIFACTS_CONTAINER", "Artifacts")]
    [InlineData("WF_ARTIFACTS_CONTAINER", "../x")]
    [InlineData("WF_LOG_LEVEL", "Loud")]
    [InlineData("WF_SHUTDOWN_GRACE_SECONDS", "-5")]
    public void Worker_environment_refuses_bad_values_naming_the_variable(string name, string value)
    {
        var act = () => WorkerEnvironment.Read(WorkerRole.Worker, Env((name, value)));
        act.Should().Throw<ArgumentException>().Which.Message.Should().ContainAny(name, "container");
    }

    [Fact]
    public void The_manifests_configmap_names_only_variables_wf_reads()
    {
        var root = FindRepositoryRoot();
        var configMap = File.ReadAllText(Path.Combine(root, "infra", "k8s", "base", "configmap.yaml"));
        var names = System.Text.RegularExpressions.Regex.Matches(configMap, @"^\s+(WF_[A-Z_]+):", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value).ToList();
        names.Should().NotBeEmpty();
        var read = typeof(WorkerEnvironment).GetFields().Where(f => f.IsLiteral && f.Name.EndsWith("Variable", StringComparison.Ordinal))
            .Select(f => (string)f.GetRawConstantValue()!).ToHashSet();
        names.Should().OnlyContain(n => read.Contains(n), "every WF_ setting in the ConfigMap must be one wf reads");
        var identityPatch = File.ReadAllText(Path.Combine(root, "infra", "k8s", "overlays", "azure-workload-identity", "configmap-patch.yaml"));
        identityPatch.Should().Contain(StorageConnection.AccountUrlVariable);
    }

    [Fact]
    public void Storage_selection_connection_string_or_account_url_never_both()
    {
        StorageConnection.FromEnvironment(Env()).Should().BeNull("then wf uses a local Azurite");

        var byKey = StorageConnection.FromEnvironment(Env(("WF_STORAGE_CONNECTION_STRING", FakeConnectionString)))!;
        byKey.UsesTokenCredential.Should().BeFalse();
        byKey.AccountName.Should().Be("wfprodacct");

        var byIdentity = StorageConnection.FromEnvironment(Env(("WF_STORAGE_ACCOUNT_URL", "https://wfprodacct.blob.core.windows.net/")), FakeCredential)!;
        byIdentity.UsesTokenCredential.Should().BeTrue();
        byIdentity.Source.Should().Be(StorageConnectionSource.ManagedIdentity);
        byIdentity.AccountName.Should().Be("wfprodacct");
        byIdentity.QueueEndpoint.Should().Be(new Uri("https://wfprodacct.queue.core.windows.net/"));
        byIdentity.TableEndpoint.Should().Be(new Uri("https://wfprodacct.table.core.windows.net/"));
        byIdentity.CreateBlobServiceClient().Uri.Should().Be(new Uri("https://wfprodacct.blob.core.windows.net/"));
        byIdentity.Description.Should().Contain("Entra ID").And.Contain("WF_STORAGE_ACCOUNT_URL");
        var noKey = () => byIdentity.ConnectionString;
        noKey.Should().Throw<InvalidOperationException>();

        var both = () => StorageConnection.FromEnvironment(Env(("WF_STORAGE_CONNECTION_STRING", FakeConnectionString),
            ("WF_STORAGE_ACCOUNT_URL", "https://wfprodacct.blob.core.windows.net/")), FakeCredential);
        both.Should().Throw<StorageConfigurationException>().Which.Message.Should().Contain("set only one").And.NotContain(FakeKey);
    }

    [Fact]
    public void Default_credential_is_DefaultAzureCredential_and_the_DTFx_service_is_built_on_the_token_for_all_three_services()
    {
        var connection = StorageConnection.FromEnvironment(Env(("WF_STORAGE_ACCOUNT_URL", "https://wfprodacct.blob.core.windows.net")))!;
        connection.Credential.Should().BeOfType<DefaultAzureCredential>();

        var provider = EngineHost.CreateSettings(connection, new EngineOptions { TaskHubName = "wfid" }).StorageAccountClientProvider!;
        provider.Blob.CreateClient(new Azure.Storage.Blobs.BlobClientOptions()).Uri.Host.Should().Be("wfprodacct.blob.core.windows.net");
        provider.Queue.CreateClient(new Azure.Storage.Queues.QueueClientOptions()).Uri.Host.Should().Be("wfprodacct.queue.core.windows.net");
        provider.Table.CreateClient(new Azure.Data.Tables.TableClientOptions()).Uri.Host.Should().Be("wfprodacct.table.core.windows.net");
    }

    [Theory]
    [InlineData("wfprodacct.blob.core.windows.net", "absolute https")]
    [InlineData("ftp://wfprodacct.blob.core.windows.net/", "absolute https")]
    [InlineData("http://wfprodacct.blob.core.windows.net/", "https")]
    [InlineData("https://wfprodacct.blob.core.windows.net/?sv=2024&sig=SIGNATURESECRET", "query string")]
    [InlineData("https://user:PASSWORDSECRET@wfprodacct.blob.core.windows.net/", "user info")]
    [InlineData("http://127.0.0.1:10000/devstoreaccount1", "WF_STORAGE_QUEUE_URL")]
    public void Bad_account_urls_are_refused_without_echoing_them(string url, string expected)
    {
        var act = () => StorageConnection.FromEnvironment(Env(("WF_STORAGE_ACCOUNT_URL", url)), FakeCredential);
        var message = act.Should().Throw<StorageConfigurationException>().Which.Message;
        message.Should().Contain(expected).And.NotContain("SIGNATURESECRET").And.NotContain("PASSWORDSECRET");
    }

    [Fact]
    public void A_path_style_emulator_url_works_with_explicit_queue_and_table_urls()
    {
        var c = StorageConnection.FromEnvironment(Env(("WF_STORAGE_ACCOUNT_URL", "http://127.0.0.1:10000/devstoreaccount1"),
            ("WF_STORAGE_QUEUE_URL", "http://127.0.0.1:10001/devstoreaccount1"), ("WF_STORAGE_TABLE_URL", "http://127.0.0.1:10002/devstoreaccount1")), FakeCredential)!;
        c.AccountName.Should().Be("devstoreaccount1");
        c.QueueEndpoint!.Port.Should().Be(10001);
        c.TableEndpoint!.Port.Should().Be(10002);
    }

    [Fact]
    public void No_key_or_connection_string_appears_in_descriptions_errors_or_logs()
    {
        var connection = StorageConnection.FromConnectionString(FakeConnectionString);
        var shown = new List<string> { connection.Description, connection.ToString() };
        foreach (var broken in new[] { FakeConnectionString.Replace("AccountName=", "AccountName", StringComparison.Ordinal), "AccountKey=" + FakeKey, FakeConnectionString + ";BlobEndpoint=::not a uri::" })
        {
            try
            {
                StorageConnection.FromConnectionString(broken);
            }
            catch (StorageConfigurationException e)
            {
                shown.Add(e.Message);
            }
        }

        // Structured logs: even when a third-party message carries a key or SAS, the JSON line does not.
        var captured = new StringWriter();
        using (var loggers = TelemetryExport.CreateLoggerFactory(LogLevel.Information, captured))
        {
#pragma warning disable CA1873 // the point is to log these arguments

            var log = loggers.CreateLogger("test");
            log.LogWarning("connecting with {ConnectionString}", FakeConnectionString);
            log.LogError(new InvalidOperationException("failed: " + FakeConnectionString), "request to https://a.blob.core.windows.net/c/b?sv=2024&sig={Sig} failed", "SASSIGNATUREVALUE");
            log.LogDebug("below the level: {Secret}", FakeKey);
#pragma warning restore CA1873
        }

        shown.Add(captured.ToString());
        captured.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(2, "Debug is below WF_LOG_LEVEL=Information")
            .And.OnlyContain(line => line.StartsWith("{\"time\":", StringComparison.Ordinal));
        foreach (var text in shown)
        {
            text.Should().NotContain(FakeKey).And.NotContain(FakeKey[..20]).And.NotContain("SASSIGNATUREVALUE");
        }

        SecretRedaction.Redact("x;AccountKey=abc/def+==;y").Should().Be("x;AccountKey=***;y");
        SecretRedaction.Redact("https://h/c?sv=1&sig=abc%2Bdef&se=2").Should().Be("https://h/c?sv=1&sig=***&se=2");
    }

    [Theory]
    [InlineData("..")]
    [InlineData(".")]
    [InlineData("/")]
    [InlineData("../other-run")]
    [InlineData("a/b")]
    [InlineData("%2e%2e")]
    [InlineData("%2F")]
    [InlineData("a\\b")]
    [InlineData("run\n2")]
    [InlineData("")]
    [InlineData(" run")]
    [InlineData("-run")]
    public void Hostile_run_ids_cannot_escape_their_prefix(string runId)
    {
        var gate = () => RunNames.ValidateRunId(runId);
        gate.Should().Throw<ArgumentException>().Which.Message.Should().Contain("run id").And.NotContain("\n");
        // The store's own rule refuses them as well (defence in depth), except the ones that are merely odd-looking.
        if (runId is ".." or "." or "/" or "../other-run" or "a/b" or "%2e%2e" or "%2F" or "a\\b" or "run\n2" or "")
        {
            var prefix = () => RunRecordStore.RunPrefix(runId);
            prefix.Should().Throw<ArgumentException>();
        }
    }

    [Theory]
    [InlineData("..")]
    [InlineData("../../cas")]
    [InlineData("%2e%2e")]
    [InlineData("Smoke")]
    [InlineData("smoke/../x")]
    [InlineData("a")]
    public void Hostile_experiment_names_are_refused(string name)
    {
        var gate = () => RunNames.ValidateExperimentName(name);
        gate.Should().Throw<ArgumentException>().Which.Message.Should().Contain("experiment name");
    }

    [Fact]
    public void Ordinary_names_pass()
    {
        RunNames.ValidateRunId(RunRecord.NewRunId()).Should().NotBeEmpty();
        RunNames.ValidateExperimentName("per-source-5b-80k").Should().Be("per-source-5b-80k");
        ArtifactName.IsValid(RunRecordStore.RecordName(RunRecord.NewRunId())).Should().BeTrue();
    }

    internal static string FindRepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Workflows.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new DirectoryNotFoundException("repository root not found");
    }
}
