using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Workflows.Engine.Tests;

/// <summary>A real worker or GPU agent process (<see cref="WorkerProgram"/>) whose stdout lines the test reads.</summary>
public sealed class TestProcess : IAsyncDisposable
{
    private readonly Process _process;

    private TestProcess(Process process) => _process = process;

    public ConcurrentQueue<string> Lines { get; } = new();
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <c>WorkerProgram worker|agent</c>; <paramref name="environment"/> adds variables (WF_SHUTDOWN_GRACE_SECONDS, WF_HEARTBEAT_FILE).</summary>
    public static TestProcess Start(string mode, string connectionString, string hub, string container, string cache,
        IReadOnlyDictionary<string, string>? environment = null, ConcurrentQueue<string>? sharedLines = null)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(typeof(WorkerProgram).Assembly.Location);
        foreach (var a in new[] { mode, hub, container, cache })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment[WorkerProgram.ConnectionVariable] = connectionString;
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = Process.Start(info)!;
        var handle = new TestProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                handle.Lines.Enqueue(line);
                sharedLines?.Enqueue(line);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                handle.Lines.Enqueue("stderr: " + line);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return handle;
    }

    public async Task WaitForLineAsync(Func<string, bool> match, TimeSpan timeout, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!Lines.Any(match))
        {
            if (watch.Elapsed > timeout || _process.HasExited)
            {
                throw new TimeoutException($"{what} did not happen within {timeout.TotalSeconds:0}s (exited: {_process.HasExited}); output:\n{string.Join("\n", Lines.TakeLast(30))}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>SIGTERM, as Kubernetes sends it before the grace period (Process.Kill would be SIGKILL).</summary>
    public void Terminate()
    {
        if (Kill(_process.Id, 15) != 0)
        {
            throw new InvalidOperationException($"kill -TERM {_process.Id} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
