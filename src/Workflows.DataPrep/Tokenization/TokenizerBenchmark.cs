using System.Collections.Concurrent;

using System.Diagnostics;

namespace Workflows.DataPrep.Tokenization;

/// <summary>What one benchmark run measured.</summary>
public sealed record TokenizerBenchmarkResult(string TokenizerId, int Threads, int Documents, long Characters, long Tokens, TimeSpan Elapsed)
{
    public double TokensPerSecond => Tokens / Elapsed.TotalSeconds;

    public double CharactersPerSecond => Characters / Elapsed.TotalSeconds;

    public override string ToString() =>
        $"{TokenizerId}: {Documents:N0} docs, {Characters:N0} chars, {Tokens:N0} tokens in {Elapsed.TotalSeconds:F2} s " +
        $"on {Threads} thread(s) = {TokensPerSecond / 1e6:F2}M tokens/s";
}

/// <summary>
/// Measures encoding throughput the way data prep uses a tokenizer: whole documents, one list reused per thread.
/// The measurement includes the tokenizer's warm-up on these texts (its word cache starts empty unless the caller
/// encoded something before); for `wf bench tokenizer`.
/// </summary>
public static class TokenizerBenchmark
{
    public static TokenizerBenchmarkResult Measure(ITokenizer tokenizer, IReadOnlyList<string> documents, int threads = 1)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(documents);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        long characters = documents.Sum(d => (long)d.Length);
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        if (threads == 1)
        {
            var ids = new List<int>();
            foreach (var document in documents)
            {
                ids.Clear();
                tokenizer.Encode(document, ids);
                tokens += ids.Count;
            }
        }
        else
        {
            Parallel.ForEach(
                Partitioner.Create(0, documents.Count, 1),
                new ParallelOptions { MaxDegreeOfParallelism = threads },
                () => (Ids: new List<int>(), Tokens: 0L),
                (range, _, local) =>
                {
                    for (var i = range.Item1; i < range.Item2; i++)
                    {
                        local.Ids.Clear();
                        tokenizer.Encode(documents[i], local.Ids);
                        local.Tokens += local.Ids.Count;
                    }

                    return local;
                },
                local => Interlocked.Add(ref tokens, local.Tokens));
        }

        clock.Stop();
        return new TokenizerBenchmarkResult(tokenizer.Id, threads, documents.Count, characters, tokens, clock.Elapsed);
    }
}
