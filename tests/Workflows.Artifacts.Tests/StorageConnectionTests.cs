using Workflows.Artifacts.Azurite;

namespace Workflows.Artifacts.Tests;

public class StorageConnectionTests
{
    private const string SecretKey = "c2VjcmV0LWtleS10aGF0LW11c3QtbmV2ZXItYmUtbG9nZ2Vk";

    [Fact]
    public void Unset_environment_means_local_azurite()
    {
        StorageConnection.FromEnvironment(_ => null).Should().BeNull();
        StorageConnection.FromEnvironment(_ => "  ").Should().BeNull();
    }

    [Fact]
    public void Environment_connection_string_is_used_and_never_printed()
    {
        var cs = $"DefaultEndpointsProtocol=https;AccountName=wfprod;AccountKey={SecretKey};EndpointSuffix=core.windows.net";
        var c = StorageConnection.FromEnvironment(v => v == StorageConnection.ConnectionStringVariable ? cs : null)!;
        c.Source.Should().Be(StorageConnectionSource.Environment);
        c.AccountName.Should().Be("wfprod");
        c.BlobEndpoint.Host.Should().Be("wfprod.blob.core.windows.net");
        c.ConnectionString.Should().Be(cs);
        c.ToString().Should().NotContain(SecretKey).And.Contain("wfprod").And.Contain(StorageConnection.ConnectionStringVariable);
        c.Description.Should().NotContain(SecretKey);
    }

    [Theory]
    [InlineData("AccountName=x;AccountKey")]
    [InlineData("AccountName=x")]
    [InlineData("BlobEndpoint=not a uri;AccountKey=" + SecretKey)]
    [InlineData("garbage")]
    public void Bad_connection_strings_fail_clearly_without_echoing_the_key(string cs)
    {
        var act = () => StorageConnection.FromEnvironment(v => v == StorageConnection.ConnectionStringVariable ? cs : null);
        act.Should().Throw<StorageConfigurationException>()
            .Where(e => !e.Message.Contains(SecretKey) && e.Message.Contains(StorageConnection.ConnectionStringVariable));
    }

    [Fact]
    public void Development_storage_shorthand_and_local_azurite_use_the_well_known_account()
    {
        var dev = StorageConnection.FromEnvironment(v => v == StorageConnection.ConnectionStringVariable ? "UseDevelopmentStorage=true" : null)!;
        dev.AccountName.Should().Be("devstoreaccount1");
        dev.BlobEndpoint.Should().Be(new Uri("http://127.0.0.1:10000/devstoreaccount1"));

        var local = StorageConnection.ForLocalAzurite(20000, 20001, 20002);
        local.IsLocalAzurite.Should().BeTrue();
        local.BlobEndpoint.Should().Be(new Uri("http://127.0.0.1:20000/devstoreaccount1"));
        local.ConnectionString.Should().Contain("QueueEndpoint=http://127.0.0.1:20001/").And.Contain("TableEndpoint=http://127.0.0.1:20002/");
        local.ToString().Should().NotContain(StorageConnection.DevelopmentAccountKey);
    }

    [Fact]
    public async Task A_configured_connection_string_starts_no_azurite()
    {
        var cs = $"DefaultEndpointsProtocol=https;AccountName=wfprod;AccountKey={SecretKey};EndpointSuffix=core.windows.net";
        await using var session = await StorageSession.OpenAsync(new StorageSessionOptions
        {
            GetEnvironmentVariable = v => v == StorageConnection.ConnectionStringVariable ? cs : null,
            WorkDirectory = Path.Combine(Path.GetTempPath(), "wf-never-created-" + Guid.NewGuid().ToString("N")),
        });
        session.StartedAzurite.Should().BeNull();
        session.Connection.AccountName.Should().Be("wfprod");
    }
}
