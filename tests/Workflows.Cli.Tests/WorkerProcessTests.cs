using System.Diagnostics;
using System.Runtime.InteropServices;
using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;
using Workflows.Engine;

namespace Workflows.Cli.Tests;

/// <summary>
/// The real <c>wf worker</c> and <c>wf gpu-agent</c> binaries, configured only by environment as in the pods:
/// heartbeat file while running, SIGTERM -> graceful stop, heartbeat removed, exit 0, and no key in any output.
/// </summary>
public sealed class WorkerProcessTests
{
    [Fact]
    public async Task Wf_worker_and_gpu_agent_beat_their_heartbeat_stop_on_SIGTERM_with_exit_0_and_never_print_the_key()
    {
        var external = Environment.GetEnvironmentVariable("WF_TEST_AZURITE_CONNECTION_STRING");
        var data = Path.Combine(Path.GetTempPath(), "wf-cli-proc-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = string.IsNullOrWhiteSpace(external)
            ? await AzuriteProcess.StartAsync(new AzuriteOptions
            {
                DataDirectory = Path.Combine(data, "azurite"), Installation = AzuriteInstallation.Locate(AppContext.BaseDirectory), InstallIfMissing = true,
            })
            : null;
        var connection = azurite?.Connection ?? StorageConnection.FromConnectionString(external!);
        var hub = EngineOptions.UniqueHubName("wfcli");
        var container = "cli-" + Guid.NewGuid().ToString("N")[..16];
        try
        {
            var worker = Start("worker", connection, hub, container, Path.Combine(data, "worker"));
            var agent = Start("gpu-agent", connection, hub, container, Path.Combine(data, "agent"));
            foreach (var p in new[] { worker, agent })
            {
                var watch = Stopwatch.StartNew();
                while (!File.Exists(p.Heartbeat))
                {
                    p.Process.HasExited.Should().BeFalse(p.Output.ToString());
                    watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(90), $"{p.Role} writes its heartbeat once storage answers");
                    await Task.Delay(200);
                }
            }

            foreach (var p in new[] { worker, agent })
            {
                Kill(p.Process.Id, 15).Should().Be(0);
            }

            foreach (var p in new[] { worker, agent })
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                await p.Process.WaitForExitAsync(timeout.Token);
                var text = p.Output.ToString();
                p.Process.ExitCode.Should().Be(0, text);
                text.Should().Contain("stopped in").And.Contain($"task hub '{hub}'").And.Contain($"container '{container}'");
                File.Exists(p.Heartbeat).Should().BeFalse($"{p.Role} removes its heartbeat when it stops");
                text.Should().NotContain(StorageConnection.DevelopmentAccountKey[..16], "no key in any output");
            }

            worker.Output.ToString().Should().Contain("{\"time\":", "WF_LOG_LEVEL=Information gives JSON log lines on stderr");
        }
        finally
        {
            var client = await EngineClient.ConnectAsync(connection, new EngineOptions { TaskHubName = hub, ContainerName = container });
            await client.DeleteHubAsync();
            await connection.CreateBlobServiceClient().GetBlobContainerClient(container).DeleteIfExistsAsync();
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }

    private sealed record Child(string Role, Process Process, string Heartbeat, System.Text.StringBuilder Output);

    private static Child Start(string role, StorageConnection connection, string hub, string container, string work)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(WfDll());
        info.ArgumentList.Add(role);
        var heartbeat = Path.Combine(work, "tmp", "heartbeat");
        info.Environment["WF_STORAGE_CONNECTION_STRING"] = connection.ConnectionString;
        info.Environment["WF_TASK_HUB"] = hub;
        info.Environment["WF_ARTIFACTS_CONTAINER"] = container;
        info.Environment["WF_HEARTBEAT_FILE"] = heartbeat;
        info.Environment["WF_WORK_DIR"] = work;
        info.Environment["WF_DATA_CACHE"] = Path.Combine(work, "cache");
        info.Environment["WF_LOG_LEVEL"] = "Information";
        info.Environment["WF_SHUTDOWN_GRACE_SECONDS"] = "20";
        var process = Process.Start(info)!;
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Child(role, process, heartbeat, output);
    }

    /// <summary>
    /// wf as built in its own project folder: the copy in this test's bin folder runs on this folder's deps, which lack
    /// Microsoft.Extensions.Logging (here it comes from the ASP.NET Core framework the GitHub fake pulls in).
    /// </summary>
    internal static string WfDll()
    {
        var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = testBin.Parent!.Name; // .../bin/<Configuration>/<tfm>
        var dll = Path.Combine(CliHarness.Root, "src", "Workflows.Cli", "bin", configuration, testBin.Name, "wf.dll");
        File.Exists(dll).Should().BeTrue($"the Cli project's build output ({dll}) exists after building this test project");
        return dll;
    }

#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
