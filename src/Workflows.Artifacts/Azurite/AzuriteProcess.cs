using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Workflows.Artifacts.Azurite;

/// <summary>How to start a local Azurite.</summary>
public sealed record AzuriteOptions
{
    /// <summary>Where Azurite persists blobs, queues and tables (created if missing). On disk on purpose: see docs/artifacts.md.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The pinned package; default <see cref="AzuriteInstallation.Locate"/>.</summary>
    public AzuriteInstallation? Installation { get; init; }

    /// <summary>0 picks a free port.</summary>
    public int BlobPort { get; init; }
    public int QueuePort { get; init; }
    public int TablePort { get; init; }

    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Run <c>npm ci</c> when node_modules is missing (the tests do; <c>wf</c> asks the user to).</summary>
    public bool InstallIfMissing { get; init; }

    /// <summary>Progress messages (installing, started, stopped). Never receives secrets.</summary>
    public TextWriter? Log { get; init; }
}

/// <summary>
/// An Azurite child process on 127.0.0.1 with on-disk persistence, started and awaited until all three services
/// accept connections, and stopped (SIGTERM so it saves its metadata, then kill) on dispose. Used by <c>wf</c> when
/// no storage connection is configured, and by the tests.
/// </summary>
public sealed class AzuriteProcess : IAsyncDisposable
{
    /// <summary>
    /// The flags and why: --skipApiVersionCheck because Azure.Storage.Blobs 12.30.1 sends x-ms-version 2026-10-06 and
    /// Azurite 3.37.0 accepts at most 2026-06-06; skipping the check on the emulator fixes our clients and the
    /// queue/table/blob clients DTFx builds internally at once, and changes nothing against real Azure (pinning
    /// BlobClientOptions.ServiceVersion would do neither). --loose ignores headers Azurite does not implement.
    /// --disableTelemetry: the emulator must not phone home. Not --silent: it also mutes the "successfully closed" lines
    /// that tell <see cref="DisposeAsync"/> the databases are saved; the access log goes to a small in-memory tail.
    /// </summary>
    private static readonly string[] FixedArguments = ["--skipApiVersionCheck", "--loose", "--disableTelemetry"];

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;
    private readonly TextWriter? _log;
    private int _disposed;

    private AzuriteProcess(Process process, ConcurrentQueue<string> output, int blobPort, int queuePort, int tablePort, string dataDirectory, TextWriter? log)
    {
        _process = process;
        _output = output;
        BlobPort = blobPort;
        QueuePort = queuePort;
        TablePort = tablePort;
        DataDirectory = dataDirectory;
        _log = log;
        Connection = StorageConnection.ForLocalAzurite(blobPort, queuePort, tablePort);
    }

    public int BlobPort { get; }
    public int QueuePort { get; }
    public int TablePort { get; }
    public string DataDirectory { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => Volatile.Read(ref _disposed) == 1 || _process.HasExited;

    /// <summary>The development-account connection for this instance.</summary>
    public StorageConnection Connection { get; }

    /// <summary>The last lines Azurite printed (for diagnostics).</summary>
    public string OutputTail => string.Join(Environment.NewLine, _output);

    public static async Task<AzuriteProcess> StartAsync(AzuriteOptions options, CancellationToken cancellationToken = default)
    {
        var installation = options.Installation ?? AzuriteInstallation.Locate();
        if (!installation.IsInstalled)
        {
            if (!options.InstallIfMissing && !installation.InstallsOnFirstUse)
            {
                throw new AzuriteNotInstalledException(
                    $"Azurite is not installed: run `npm ci` in {installation.PackageDirectory} (or `scripts/azurite.sh start`, which does it), or set {StorageConnection.ConnectionStringVariable} to use other storage.");
            }
            await installation.InstallAsync(options.Log, cancellationToken).ConfigureAwait(false);
        }
        var autoPorts = options.BlobPort == 0 || options.QueuePort == 0 || options.TablePort == 0;
        for (var attempt = 1; ; attempt++)
        {
            var (blob, queue, table) = ChoosePorts(options);
            try
            {
                return await StartOnceAsync(installation, options, blob, queue, table, cancellationToken).ConfigureAwait(false);
            }
            catch (AzuritePortInUseException) when (autoPorts && attempt < 3)
            {
                // A free port we picked was taken before Azurite bound it: pick again.
            }
        }
    }

    private static (int Blob, int Queue, int Table) ChoosePorts(AzuriteOptions options)
    {
        var explicitPorts = new[] { (options.BlobPort, "blob"), (options.QueuePort, "queue"), (options.TablePort, "table") };
        foreach (var (port, service) in explicitPorts)
        {
            if (port != 0 && !IsPortFree(port))
            {
                throw new AzuritePortInUseException(port, service);
            }
        }
        // Hold all listeners at once so the three free ports are distinct, then release them for Azurite.
        var listeners = new List<TcpListener>();
        try
        {
            int Pick(int requested)
            {
                if (requested != 0)
                {
                    return requested;
                }
                var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                listeners.Add(l);
                return ((IPEndPoint)l.LocalEndpoint).Port;
            }
            return (Pick(options.BlobPort), Pick(options.QueuePort), Pick(options.TablePort));
        }
        finally
        {
            foreach (var l in listeners)
            {
                l.Stop();
            }
        }
    }

    /// <summary>True when nothing listens on 127.0.0.1:<paramref name="port"/>.</summary>
    public static bool IsPortFree(int port)
    {
        try
        {
            // SO_REUSEADDR, as node uses when Azurite listens: then only a live listener makes the bind fail, not
            // connections of a just-stopped server lingering in TIME_WAIT.
            var l = new TcpListener(IPAddress.Loopback, port);
            l.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            l.Start();
            l.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static async Task<AzuriteProcess> StartOnceAsync(
        AzuriteInstallation installation, AzuriteOptions options, int blobPort, int queuePort, int tablePort, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(options.DataDirectory);
        var psi = new ProcessStartInfo(installation.NodeCommand)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // so Azurite never reads the user's terminal
            UseShellExecute = false,
            WorkingDirectory = options.DataDirectory,
        };
        string[] args =
        [
            installation.EntryScript,
            "--location", options.DataDirectory,
            "--blobHost", "127.0.0.1", "--blobPort", blobPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--queueHost", "127.0.0.1", "--queuePort", queuePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tableHost", "127.0.0.1", "--tablePort", tablePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            .. FixedArguments,
        ];
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var output = new ConcurrentQueue<string>();
        void Collect(object? _, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }
            output.Enqueue(e.Data);
            while (output.Count > 200 && output.TryDequeue(out var _))
            {
            }
        }

        Process process;
        try
        {
            process = new Process { StartInfo = psi, EnableRaisingEvents = true };
            process.OutputDataReceived += Collect;
            process.ErrorDataReceived += Collect;
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new AzuriteNotInstalledException($"Cannot start Azurite: Node.js (`node`) is not on PATH ({e.Message}). Install Node.js >= 20.", e);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var azurite = new AzuriteProcess(process, output, blobPort, queuePort, tablePort, options.DataDirectory, options.Log);
        var stopwatch = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (process.HasExited)
                {
                    await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false); // drain output
                    var tail = azurite.OutputTail;
                    if (tail.Contains("EADDRINUSE", StringComparison.Ordinal))
                    {
                        var port = new[] { (blobPort, "blob"), (queuePort, "queue"), (tablePort, "table") }
                            .FirstOrDefault(p => tail.Contains($":{p.Item1}", StringComparison.Ordinal));
                        throw new AzuritePortInUseException(port.Item1 == 0 ? blobPort : port.Item1, port.Item2 ?? "blob");
                    }
                    throw new AzuriteStartException($"Azurite exited with code {process.ExitCode} during start. Its output:{Environment.NewLine}{tail}");
                }
                if (await AcceptsAsync(blobPort).ConfigureAwait(false)
                    && await AcceptsAsync(queuePort).ConfigureAwait(false)
                    && await AcceptsAsync(tablePort).ConfigureAwait(false))
                {
                    break;
                }
                if (stopwatch.Elapsed > options.ReadyTimeout)
                {
                    throw new AzuriteStartException(
                        $"Azurite did not accept connections on ports {blobPort}/{queuePort}/{tablePort} within {options.ReadyTimeout.TotalSeconds:0} s. Its output:{Environment.NewLine}{azurite.OutputTail}");
                }
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            await azurite.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        options.Log?.WriteLine(
            $"Started Azurite (pid {process.Id}) on 127.0.0.1:{blobPort}/{queuePort}/{tablePort} in {stopwatch.Elapsed.TotalSeconds:0.0} s, data in {options.DataDirectory}");
        return azurite;
    }

    private static async Task<bool> AcceptsAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Stops Azurite: SIGTERM, upon which it closes its databases (saving metadata) and prints "successfully closed"
    /// per service; it would then linger until idle keep-alive connections time out (5 s), so once all three services
    /// report closed (or after 10 s) the process is killed.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            if (!_process.HasExited)
            {
                if (!OperatingSystem.IsWindows())
                {
                    _ = NativeMethods.Kill(_process.Id, NativeMethods.SigTerm);
                    var deadline = Stopwatch.StartNew();
                    while (!_process.HasExited && deadline.Elapsed < TimeSpan.FromSeconds(10) && CountClosed() < 3)
                    {
                        await Task.Delay(50).ConfigureAwait(false);
                    }
                }
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                }
                await _process.WaitForExitAsync().ConfigureAwait(false);
                _log?.WriteLine($"Stopped Azurite (pid {_process.Id}).");
            }
        }
        catch (InvalidOperationException)
        {
            // it had already gone
        }
        finally
        {
            _process.Dispose();
        }
    }

    private int CountClosed() => _output.Count(line => line.Contains("successfully closed", StringComparison.Ordinal));
}

internal static class NativeMethods
{
    public const int SigTerm = 15;

    // .NET has no API to send SIGTERM; Process.Kill sends SIGKILL, which would skip Azurite's clean shutdown.
    // A blittable int/int signature needs no marshalling, so plain DllImport (no unsafe code) is enough.
#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
