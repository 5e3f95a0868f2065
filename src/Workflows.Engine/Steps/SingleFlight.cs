using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Store;

namespace Workflows.Engine.Steps;

/// <summary>
/// One execution per cache key when several runs reach the key at the same time (the variants of a sweep start
/// together and all measure the same input files): the first claims the key with a blob lease on
/// <c>cas/&lt;activity&gt;/&lt;hash&gt;/in-flight</c>, renewed while it works; the others wait for its output (polling
/// the cache with back-off) instead of computing it again. A holder that dies stops renewing, the lease lapses within
/// <see cref="LeaseDuration"/>, and a waiter takes the work over. Losing the lease mid-work only risks a duplicate
/// execution, which the create-only manifest already makes harmless.
/// </summary>
public static class SingleFlight
{
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RenewEvery = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromSeconds(10);

    public static string ClaimName(ArtifactKey key) => key.Prefix + "in-flight";

    /// <summary>The cached output when there is one, else <paramref name="compute"/> run here or by the run that claimed the key first.</summary>
    public static async Task<T> RunAsync<T>(IArtifactStore store, ArtifactKey key, Func<Task<T?>> cached, Func<Task<T>> compute, CancellationToken cancellationToken = default)
        where T : class
    {
        var poll = FirstPoll;
        while (true)
        {
            if (await cached().ConfigureAwait(false) is { } hit)
            {
                return hit;
            }

            var lease = await store.TryAcquireLeaseAsync(ClaimName(key), LeaseDuration, cancellationToken).ConfigureAwait(false);
            if (lease is not null)
            {
                await using (lease.ConfigureAwait(false))
                {
                    // Published between the check and the claim: nothing left to do.
                    if (await cached().ConfigureAwait(false) is { } late)
                    {
                        return late;
                    }

                    using var stopRenewing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    var renewing = RenewAsync(lease, stopRenewing.Token);
                    try
                    {
                        return await compute().ConfigureAwait(false);
                    }
                    finally
                    {
                        await stopRenewing.CancelAsync().ConfigureAwait(false);
                        await renewing.ConfigureAwait(false);
                    }
                }
            }

            await Task.Delay(poll, cancellationToken).ConfigureAwait(false);
            poll = TimeSpan.FromTicks(Math.Min(poll.Ticks * 2, LongestPoll.Ticks));
        }
    }

    private static async Task RenewAsync(IArtifactLease lease, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await Task.Delay(RenewEvery, stop).ConfigureAwait(false);
                await lease.RenewAsync(stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The claim is lost (storage unreachable, lease taken): the work goes on; at worst another run repeats it.
        }
    }
}
