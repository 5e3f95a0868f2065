using Workflows.Artifacts.Azurite;

namespace Workflows.Artifacts.Tests;

/// <summary>Which local Azurite a wf command uses: only its own store's, found through the marker, never a stranger's.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class LocalAzuriteTests(AzuriteFixture azurite) : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-local-azurite-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    private StorageSessionOptions Options(string work, int blobPort = 10000) => new()
    {
        WorkDirectory = work,
        Installation = azurite.Installation,
        BlobPort = blobPort,
        QueuePort = blobPort + 1,
        TablePort = blobPort + 2,
        GetEnvironmentVariable = _ => null,
    };

    [Fact]
    public async Task A_session_adopts_its_own_stores_azurite_and_never_another_checkouts()
    {
        var first = Path.Combine(temp, "checkout-a", ".wf");
        var second = Path.Combine(temp, "checkout-b", ".wf");

        await using var started = await StorageSession.OpenAsync(Options(first));
        started.StartedAzurite.Should().NotBeNull();
        var marker = LocalAzurite.At(first).ReadMarker()!;
        marker.Pid.Should().Be(started.StartedAzurite!.ProcessId);
        marker.BlobPort.Should().Be(started.StartedAzurite.BlobPort);

        // The same store: adopted, not started again.
        await using (var adopted = await StorageSession.OpenAsync(Options(first)))
        {
            adopted.StartedAzurite.Should().BeNull();
            adopted.Connection.ConnectionString.Should().Be(started.Connection.ConnectionString);
        }

        // Another checkout asking for the very port A's Azurite listens on gets its own Azurite on free ports.
        await using (var other = await StorageSession.OpenAsync(Options(second, blobPort: marker.BlobPort)))
        {
            other.StartedAzurite.Should().NotBeNull("an Azurite that is not this store's is never adopted");
            other.StartedAzurite!.BlobPort.Should().NotBe(marker.BlobPort);
            other.StartedAzurite.DataDirectory.Should().Be(Path.Combine(second, "azurite", "data"));
        }

        LocalAzurite.At(second).ReadMarker().Should().BeNull("the marker goes with the Azurite that wrote it");
        LocalAzurite.At(first).ReadMarker().Should().Be(marker);
    }

    [Fact]
    public async Task A_marker_whose_process_is_not_this_stores_azurite_is_ignored()
    {
        var work = Path.Combine(temp, "stale", ".wf");
        var local = LocalAzurite.At(work);
        // A live process that is not Azurite (this test host) on a port where something listens: a recycled pid.
        await using var someoneElses = await StorageSession.OpenAsync(Options(Path.Combine(temp, "elsewhere", ".wf")));
        local.WriteMarker(new LocalAzuriteMarker(Environment.ProcessId, someoneElses.StartedAzurite!.BlobPort, 1, 2));
        local.ServesThisStore(Environment.ProcessId).Should().BeFalse();

        await using var session = await StorageSession.OpenAsync(Options(work, blobPort: someoneElses.StartedAzurite.BlobPort));

        session.StartedAzurite.Should().NotBeNull();
        local.ReadMarker()!.Pid.Should().Be(session.StartedAzurite!.ProcessId);
    }

    [Fact]
    public void The_work_directory_is_the_checkouts_whatever_subfolder_wf_runs_in()
    {
        var repo = Path.Combine(temp, "repo");
        Directory.CreateDirectory(Path.Combine(repo, "workflows"));
        Directory.CreateDirectory(Path.Combine(repo, "experiments", "deep"));
        LocalAzurite.DefaultWorkDirectory(Path.Combine(repo, "experiments", "deep")).Should().Be(Path.Combine(repo, ".wf"));
        LocalAzurite.DefaultWorkDirectory(temp).Should().Be(Path.Combine(temp, ".wf"));
    }

    [Fact]
    public async Task Without_nodejs_the_first_use_install_says_what_to_install()
    {
        var perUser = AzuriteInstallation.PerUser(Path.Combine(temp, "home")) with { NodeCommand = "wf-test-no-such-node", NpmCommand = "wf-test-no-such-npm" };
        perUser.InstallsOnFirstUse.Should().BeTrue();
        File.ReadAllText(Path.Combine(perUser.PackageDirectory, "package.json"))
            .Should().Be(File.ReadAllText(Path.Combine(azurite.Installation.PackageDirectory, "package.json")), "the per-user copy is the pinned package");

        var act = () => AzuriteProcess.StartAsync(new AzuriteOptions { DataDirectory = Path.Combine(temp, "data"), Installation = perUser });

        (await act.Should().ThrowAsync<AzuriteNotInstalledException>()).Which.Message
            .Should().Contain("Node.js").And.Contain("WF_STORAGE_CONNECTION_STRING").And.Contain("wf-test-no-such-node");
    }
}
