namespace Workflows.Engine.Hosting;

/// <summary>
/// The liveness contract of the Kubernetes manifests: while the process is healthy it rewrites
/// <c>$WF_HEARTBEAT_FILE</c> every <see cref="Interval"/> (10 s; the contract says at least every 15 s). The pods'
/// exec probes check the file's age: startup waits for it to exist, readiness wants it younger than 1 minute,
/// liveness restarts the pod when it is older than 3 minutes (worker) or 5 minutes (GPU agent). "Healthy" is a check
/// the caller supplies (storage answers and the work loop is alive); when it fails the file is not touched, so a
/// worker cut off from storage turns unready after a minute and is restarted after three. On stop the file is
/// deleted, so a draining pod is unready at once.
/// </summary>
public sealed class Heartbeat : IAsyncDisposable
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    private Heartbeat(string path, Func<CancellationToken, Task<bool>> healthy, TimeSpan interval, Action<string>? log)
    {
        Path = System.IO.Path.GetFullPath(path);
        Interval = interval;
        _loop = LoopAsync(healthy, log);
    }

    public string Path { get; }
    public TimeSpan Interval { get; }

    /// <summary>Beats written so far (for tests and logs).</summary>
    public int Beats { get; private set; }

    /// <summary>Starts beating; null when <paramref name="path"/> is null (no heartbeat configured).</summary>
    public static Heartbeat? Start(string? path, Func<CancellationToken, Task<bool>> healthy, TimeSpan? interval = null, Action<string>? log = null) =>
        string.IsNullOrWhiteSpace(path) ? null : new Heartbeat(path, healthy, interval ?? DefaultInterval, log);

    private async Task LoopAsync(Func<CancellationToken, Task<bool>> healthy, Action<string>? log)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        var wasHealthy = true;
        while (!_stop.IsCancellationRequested)
        {
            bool ok;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(Interval);
                ok = await healthy(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                ok = false;
                if (wasHealthy)
                {
                    log?.Invoke($"heartbeat: health check failed ({e.GetType().Name}); not touching {Path}");
                }
            }

            if (_stop.IsCancellationRequested)
            {
                break;
            }

            if (ok)
            {
                // Write to a temp name and move, so a probe never sees a half-written file.
                var temp = Path + ".tmp";
                await File.WriteAllTextAsync(temp, DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture)).ConfigureAwait(false);
                File.Move(temp, Path, overwrite: true);
                Beats++;
                if (!wasHealthy)
                {
                    log?.Invoke("heartbeat: healthy again");
                }
            }

            wasHealthy = ok;
            try
            {
                await Task.Delay(Interval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>Stops beating and deletes the file (a stopping process is not ready for work).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        File.Delete(Path);
        _stop.Dispose();
    }
}
