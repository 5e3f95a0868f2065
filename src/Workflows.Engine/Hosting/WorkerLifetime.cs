using System.Runtime.InteropServices;
using Workflows.Artifacts.Store;
using Workflows.Engine.Jobs;

namespace Workflows.Engine.Hosting;

/// <summary>What a stopped worker or agent reports.</summary>
/// <param name="HandedBack">Work still running when the grace period ended, left for others (activities: redelivered by DTFx; jobs: queued again).</param>
public sealed record ShutdownReport(TimeSpan Took, int HandedBack);

/// <summary>
/// The life of <c>wf worker</c> and <c>wf gpu-agent</c> processes: heartbeat while healthy, then on SIGTERM (or
/// Ctrl-C) a graceful stop within the grace period. Shared by the CLI and the tests' worker processes, so the tests
/// exercise the code the pods run.
/// </summary>
public static class WorkerLifetime
{
    /// <summary>A storage round trip (a HEAD of a blob that need not exist): the worker is healthy when storage answers.</summary>
    public static async Task<bool> StorageAnswersAsync(IArtifactStore store, CancellationToken cancellationToken)
    {
        await store.GetPropertiesAsync("health/probe", cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Runs until <paramref name="stop"/> fires, then stops <paramref name="host"/> gracefully.</summary>
    public static async Task<ShutdownReport> RunWorkerAsync(EngineHost host, WorkerEnvironment environment, CancellationToken stop, Action<string> log)
    {
        var heartbeat = Heartbeat.Start(environment.HeartbeatFile, ct => StorageAnswersAsync(host.Services.Store, ct), log: log);
        var watch = await WaitForStopAsync(stop, heartbeat).ConfigureAwait(false);

        log($"stopping: no new work; waiting up to {environment.ShutdownGrace.TotalSeconds:0}s for {host.InFlight.Count} running activit{(host.InFlight.Count == 1 ? "y" : "ies")}");
        var handedBack = await host.StopAsync(environment.ShutdownGrace).ConfigureAwait(false);
        log($"stopped in {watch.Elapsed.TotalSeconds:0.0}s; {handedBack} activit{(handedBack == 1 ? "y" : "ies")} handed back for redelivery");
        log("executions: " + string.Join(" ", host.InFlight.Executions.Select(e => $"{e.Key}={e.Value}")));
        return new ShutdownReport(watch.Elapsed, handedBack);
    }

    /// <summary>
    /// Runs the agent until <paramref name="stop"/> fires; a running job then gets <c>ShutdownGrace</c> to finish
    /// before it is handed back.
    /// </summary>
    public static async Task<ShutdownReport> RunAgentAsync(GpuAgent agent, IArtifactStore store, WorkerEnvironment environment, CancellationToken stop, Action<string> log)
    {
        // Healthy = a job is running (a storage blip must not get a days-long training job's pod restarted; the job's
        // lease heartbeat tells the other agents whether it is alive), or storage answers and the job loop went round recently.
        var stale = TimeSpan.FromMinutes(2) + agent.PollInterval;
        var heartbeat = Heartbeat.Start(environment.HeartbeatFile,
            async ct => agent.IsRunningJob
                        || (await StorageAnswersAsync(store, ct).ConfigureAwait(false) && DateTimeOffset.UtcNow - agent.LastAliveAt < stale),
            log: log);
        using var abort = new CancellationTokenSource();
        var loop = agent.RunAsync(stop, abort.Token);
        var watch = await WaitForStopAsync(stop, heartbeat).ConfigureAwait(false);

        log($"stopping: no new jobs; {(agent.IsRunningJob ? $"the running job gets up to {environment.ShutdownGrace.TotalSeconds:0}s" : "no job running")}");
        abort.CancelAfter(environment.ShutdownGrace);
        try
        {
            await loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        log($"stopped in {watch.Elapsed.TotalSeconds:0.0}s; {agent.JobsHandedBack} job(s) handed back");
        return new ShutdownReport(watch.Elapsed, agent.JobsHandedBack);
    }

    /// <summary>Waits for <paramref name="stop"/>, then removes the heartbeat (a stopping pod is unready at once); the stopwatch times the shutdown.</summary>
    private static async Task<System.Diagnostics.Stopwatch> WaitForStopAsync(CancellationToken stop, IAsyncDisposable? heartbeat)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        var watch = System.Diagnostics.Stopwatch.StartNew();
        if (heartbeat is not null)
        {
            await heartbeat.DisposeAsync().ConfigureAwait(false);
        }

        return watch;
    }

    /// <summary>A token cancelled by SIGTERM or SIGINT (for processes without System.CommandLine, such as the tests' workers).</summary>
    public static CancellationTokenSource OnTerminationSignal(out IDisposable registrations)
    {
        var cts = new CancellationTokenSource();
        void Handler(PosixSignalContext context)
        {
            context.Cancel = true; // we exit on our own, after draining
            cts.Cancel();
        }

        var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handler);
        var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handler);
        registrations = new Both(term, interrupt);
        return cts;
    }

    private sealed class Both(IDisposable a, IDisposable b) : IDisposable
    {
        public void Dispose()
        {
            a.Dispose();
            b.Dispose();
        }
    }
}
