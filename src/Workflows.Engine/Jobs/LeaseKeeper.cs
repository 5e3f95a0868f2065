using System.Diagnostics;
using Workflows.Artifacts.Store;

namespace Workflows.Engine.Jobs;

/// <summary>How an agent holds a job: lease length, renewal rhythm, and when work must stop without a renewal.</summary>
public sealed record GpuLeaseOptions
{
    /// <summary>The blob lease on a job's status (15-60 s): a dead agent's job is taken over at most this long after its last renewal.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often the lease is renewed (and progress written).</summary>
    public TimeSpan RenewEvery { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Without a successful renewal for this long the job's work is cancelled; <c>Duration - StopWorkAfter</c> is the
    /// time it has to stop before another agent could take the job.
    /// </summary>
    public TimeSpan StopWorkAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Work still running this close to the earliest possible lapse ends the agent process: work never outlives its lease.</summary>
    public TimeSpan ExitMargin { get; init; } = TimeSpan.FromSeconds(5);

    public void Validate()
    {
        if (Duration < TimeSpan.FromSeconds(15) || Duration > TimeSpan.FromSeconds(60) || RenewEvery <= TimeSpan.Zero
            || StopWorkAfter <= RenewEvery || StopWorkAfter + ExitMargin >= Duration)
        {
            throw new ArgumentException($"GPU lease timings must satisfy 15 s <= Duration <= 60 s and RenewEvery < StopWorkAfter < Duration - ExitMargin (got {this})");
        }
    }
}

/// <summary>
/// Keeps a job's lease and says when it can no longer be trusted (Temporal's heartbeat rule: an activity whose heartbeat
/// fails stops its work). Renewals are timed on this machine's monotonic clock from the moment each request is sent;
/// the service starts the new lease period when it receives the request, later, so <c>sent + Duration</c> is a lower
/// bound of the real expiry whatever any machine's wall clock says (clock skew between agents cannot matter: the
/// lease lives on the service, and this bound uses no wall clock). When <see cref="GpuLeaseOptions.StopWorkAfter"/>
/// passes without a successful renewal, or the service says the lease is not ours, <see cref="Lost"/> fires so the
/// work stops while the lease still protects it; if the work has not reported <see cref="WorkEnded"/> by
/// <see cref="GpuLeaseOptions.ExitMargin"/> before the bound, the process exits rather than let the work outlive it.
/// </summary>
public sealed class LeaseKeeper : IAsyncDisposable
{
    private readonly IArtifactLease _lease;
    private readonly GpuLeaseOptions _options;
    private readonly Func<CancellationToken, Task> _onRenewed;
    private readonly Action<string> _log;
    private readonly Stopwatch _clock;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewing;
    private readonly Task _watching;
    private long _validUntilTicks;
    private volatile bool _workEnded;
    private string? _lastError;

    /// <param name="acquireClock">Started just before the acquire request was sent: the first lease period is bounded from then.</param>
    /// <param name="onRenewed">After each successful renewal (write progress, check for cancellation); bounded by the renewal interval, its failures only logged.</param>
    public LeaseKeeper(IArtifactLease lease, Stopwatch acquireClock, GpuLeaseOptions options, Func<CancellationToken, Task> onRenewed, Action<string> log)
    {
        _lease = lease;
        _options = options;
        _onRenewed = onRenewed;
        _log = log;
        _clock = acquireClock;
        _validUntilTicks = options.Duration.Ticks;
        _renewing = Task.Run(RenewAsync);
        _watching = Task.Run(WatchAsync);
    }

    /// <summary>Fires when the lease cannot be trusted any longer: the job's work must stop.</summary>
    public CancellationToken Lost => _lost.Token;

    public bool IsLost => _lost.IsCancellationRequested;

    public string? LostReason { get; private set; }

    /// <summary>How long the lease is certainly still ours (the lower bound), negative once it may have lapsed.</summary>
    public TimeSpan CertainFor => TimeSpan.FromTicks(Interlocked.Read(ref _validUntilTicks)) - _clock.Elapsed;

    /// <summary>The job's work has returned (whatever its outcome): the exit watchdog stands down.</summary>
    public void WorkEnded() => _workEnded = true;

    private async Task RenewAsync()
    {
        while (!_stop.IsCancellationRequested && !IsLost)
        {
            try
            {
                await Task.Delay(_options.RenewEvery, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var sent = _clock.Elapsed;
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            bounded.CancelAfter(_options.RenewEvery); // a renewal that hangs must not hold up the next one
            try
            {
                if (!await _lease.TryRenewAsync(bounded.Token).ConfigureAwait(false))
                {
                    // Broken by an operator, or lapsed and taken: someone else may hold it now, so the work gets only the exit margin.
                    Interlocked.Exchange(ref _validUntilTicks, (_clock.Elapsed + _options.ExitMargin + _options.ExitMargin).Ticks);
                    Lose("the service says the lease is no longer ours (it lapsed and was taken, or was broken)");
                    return;
                }

                Interlocked.Exchange(ref _validUntilTicks, (sent + _options.Duration).Ticks);
                _lastError = null;
                await _onRenewed(bounded.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                _lastError = $"no answer within {_options.RenewEvery.TotalSeconds:0}s";
                _log($"lease renewal failed ({_lastError}); certain for {CertainFor.TotalSeconds:0}s more");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _lastError = StorageFailure.Describe(e) ?? $"{e.GetType().Name}: {e.Message}";
                _log($"lease renewal or heartbeat failed ({_lastError}); certain for {CertainFor.TotalSeconds:0}s more");
            }
        }
    }

    private async Task WatchAsync()
    {
        var stopAt = _options.Duration - _options.StopWorkAfter;
        while (!_stop.IsCancellationRequested)
        {
            var left = CertainFor;
            if (!IsLost && left < stopAt)
            {
                Lose($"not renewed for {(_options.Duration - left).TotalSeconds:0}s ({_lastError ?? "no answer"})");
            }

            if (IsLost && !_workEnded && left < _options.ExitMargin)
            {
                var message = $"wf gpu-agent: the job's work did not stop within {(_options.Duration - _options.StopWorkAfter - _options.ExitMargin).TotalSeconds:0}s of losing its lease; " +
                              "exiting so that it cannot run beside the agent that takes the job over";
                _log(message);
                Environment.FailFast(message);
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Lose(string reason)
    {
        LostReason ??= reason;
        _log($"lease lost: {reason}; stopping the job's work");
        _lost.Cancel();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_renewing, _watching).ConfigureAwait(false);
        _stop.Dispose();
        _lost.Dispose();
    }
}
