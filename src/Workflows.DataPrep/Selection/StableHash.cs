using System.Text;

namespace Workflows.DataPrep.Selection;

/// <summary>
/// Per-document randomness as a pure function of (seed, purpose, file key, line, ...): SplitMix64 finalisers over
/// an FNV-1a hash of the file key. No shared random stream exists, so the order in which documents are visited,
/// the number of threads and the split into shard tasks cannot change any decision. The constants are frozen:
/// changing them changes every plan.
/// </summary>
public static class StableHash
{
    public static ulong OfKey(string key)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(key))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return Mix(hash);
    }

    public static ulong Combine(ulong seed, ulong purpose, ulong fileHash, long line, long a = 0, long b = 0)
    {
        var h = Mix(seed ^ 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ purpose);
        h = Mix(h ^ fileHash);
        h = Mix(h ^ (ulong)line);
        h = Mix(h ^ (ulong)a);
        return Mix(h ^ (ulong)b);
    }

    /// <summary>A uniform double in [0, 1) from the top 53 bits.</summary>
    public static double ToUnit(ulong hash) => (hash >> 11) * (1.0 / (1UL << 53));

    /// <summary>SplitMix64's output function.</summary>
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public const ulong PurposeKeep = 1;
    public const ulong PurposeVisitOrder = 2;
    public const ulong PurposePackOrder = 3;
}
