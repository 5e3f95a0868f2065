using Workflows.Training.Inference;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

/// <summary>KV-cache inference against the model's own full forward pass (tiny GQA model, CPU, float32).</summary>
public class InferenceTests
{
    const int Vocab = 101;

    // A short "pretraining length" (16) so that dynamic NTK and YaRN are active at the test lengths.
    static readonly RopeScaling[] Scalings =
    [
        RopeScaling.None,
        new(RopeScalingKind.Linear, 4),
        new(RopeScalingKind.Yarn, 4, OriginalMaxPositions: 16),
        new(RopeScalingKind.DynamicNtk, 10, OriginalMaxPositions: 16),
    ];

    public static TheoryData<int> ScalingIndices => new() { 0, 1, 2, 3 };

    static LlamaModel NewModel(RopeScaling rope, int seed = 21)
    {
        manual_seed(seed);
        var model = new LlamaModel(TinyModels.Config(Vocab, rope: rope));
        model.eval();
        return model;
    }

    static Tensor Tokens(int batch, int length, int seed)
    {
        manual_seed(seed);
        return randint(Vocab, [batch, length], dtype: ScalarType.Int64);
    }

    static Tensor FullLogits(LlamaModel model, Tensor ids)
    {
        using var _ = no_grad();
        return model.forward(ids);
    }

    static void ShouldBeClose(Tensor actual, Tensor expected, string because)
    {
        actual.shape.Should().Equal(expected.shape, because);
        double diff = (actual - expected).abs().max().item<float>();
        diff.Should().BeLessThan(2e-4, because);
    }

    [Theory]
    [MemberData(nameof(ScalingIndices))]
    public void Token_by_token_decoding_gives_the_logits_of_the_full_forward_pass(int scaling)
    {
        using var model = NewModel(Scalings[scaling]);
        var ids = Tokens(2, 30, seed: 3);
        var expected = FullLogits(model, ids);

        using var gen = new LlamaGenerator(model, new GeneratorOptions(PrefillChunkTokens: 64, GrowthTokens: 8));
        // Dynamic NTK's base depends on the length; the full pass uses that of all 30 tokens (see LlamaGenerator).
        if (Scalings[scaling].Kind == RopeScalingKind.DynamicNtk) gen.RopeScalingLength = 30;
        var prompt = gen.PrefillAllLogits(ids.narrow(1, 0, 10));
        ShouldBeClose(prompt, expected.narrow(1, 0, 10), "prefill of the first 10 tokens");
        for (int p = 10; p < 30; p++)
        {
            var logits = gen.Prefill(ids.narrow(1, p, 1));
            ShouldBeClose(logits, expected.select(1, p), $"decoded position {p}");
        }
        gen.Length.Should().Be(30);
        gen.Cache.Capacity.Should().Be(32, "the cache grows in whole chunks of 8 positions");
    }

    [Theory]
    [MemberData(nameof(ScalingIndices))]
    public void Chunked_prefill_equals_one_shot_prefill_and_the_full_forward_pass(int scaling)
    {
        using var model = NewModel(Scalings[scaling]);
        var ids = Tokens(3, 37, seed: 4);
        using var oneShot = new LlamaGenerator(model, new GeneratorOptions(PrefillChunkTokens: 1000));
        using var chunked = new LlamaGenerator(model, new GeneratorOptions(PrefillChunkTokens: 8, GrowthTokens: 16));

        var whole = oneShot.PrefillAllLogits(ids);
        var pieces = chunked.PrefillAllLogits(ids);

        // Without RopeScalingLength, dynamic NTK uses the base of the prompt's length (37) in both, as HF's prefill.
        ShouldBeClose(pieces, whole, "5 chunks of 8 (the last of 5) against one pass");
        ShouldBeClose(whole, FullLogits(model, ids), "one cached pass against the training forward");
        chunked.Cache.Capacity.Should().Be(37, "a prefill allocates the known prompt length once");
    }

    [Fact]
    public void Prefix_reuse_by_truncation_or_snapshot_gives_what_a_fresh_prefill_gives()
    {
        using var model = NewModel(Scalings[3]); // dynamic NTK: the hardest case for reuse
        var prefix = Tokens(1, 20, seed: 5);
        var suffixes = Enumerable.Range(0, 3).Select(i => Tokens(1, 6, seed: 50 + i)).ToList();
        const int total = 20 + 6 + 8;

        int[] Fresh(Tensor suffix)
        {
            using var gen = new LlamaGenerator(model) { RopeScalingLength = total };
            return gen.GenerateGreedy(cat([prefix, suffix], 1), 8)[0];
        }
        var expected = suffixes.Select(Fresh).ToList();

        using var reused = new LlamaGenerator(model, new GeneratorOptions(PrefillChunkTokens: 7)) { RopeScalingLength = total };
        reused.Prefill(prefix);
        using var snapshot = reused.Snapshot();
        for (int i = 0; i < suffixes.Count; i++)
        {
            reused.TruncateTo(20);
            reused.GenerateGreedy(suffixes[i], 8)[0].Should().Equal(expected[i], $"suffix {i} after truncating back to the prefix");
            reused.Length.Should().Be(20 + 6 + 7, "prompt + generated tokens but the last");
        }
        for (int i = suffixes.Count - 1; i >= 0; i--)
        {
            reused.Restore(snapshot);
            reused.GenerateGreedy(suffixes[i], 8)[0].Should().Equal(expected[i], $"suffix {i} after restoring a snapshot");
        }
        expected.Distinct(new SequenceComparer()).Should().HaveCount(3, "different suffixes lead to different continuations (else the test proves little)");
    }

    [Fact]
    public void Greedy_decoding_is_the_argmax_loop_over_the_full_model_and_is_deterministic()
    {
        using var model = NewModel(RopeScaling.None);
        var prompts = Tokens(3, 12, seed: 6);

        // Reference without cache: run the growing sequence through the full model, take the last argmax.
        var reference = new List<int[]>();
        for (int b = 0; b < 3; b++)
        {
            var seq = prompts.narrow(0, b, 1);
            var produced = new List<int>();
            for (int i = 0; i < 10; i++)
            {
                long next = FullLogits(model, seq).select(1, seq.shape[1] - 1).argmax(-1).item<long>();
                produced.Add((int)next);
                seq = cat([seq, tensor(new[] { next }).view(1, 1)], 1);
            }
            reference.Add(produced.ToArray());
        }

        using var gen = new LlamaGenerator(model, new GeneratorOptions(PrefillChunkTokens: 5));
        var batched = gen.GenerateGreedy(prompts, 10);
        for (int b = 0; b < 3; b++) batched[b].Should().Equal(reference[b], $"row {b} of the batch");

        gen.Reset();
        gen.GenerateGreedy(prompts, 10).Should().BeEquivalentTo(batched, o => o.WithStrictOrdering(), "same prompts, same tokens");
        gen.Reset();
        gen.GenerateGreedy(prompts.narrow(0, 1, 1), 10)[0].Should().Equal(reference[1], "a prompt alone equals its row of a batch");

        // EOS: row 0 stops before the token it would produce third; the others go on.
        int eos = reference[0][2];
        gen.Reset();
        var stopped = gen.GenerateGreedy(prompts, 10, eosId: eos);
        stopped[0].Should().Equal(reference[0].Take(2));
        for (int b = 1; b < 3; b++)
        {
            int at = Array.IndexOf(reference[b], eos);
            stopped[b].Should().Equal(at < 0 ? reference[b] : reference[b].Take(at));
        }
    }

    sealed class SequenceComparer : IEqualityComparer<int[]>
    {
        public bool Equals(int[]? x, int[]? y) => x!.SequenceEqual(y!);
        public int GetHashCode(int[] obj) => obj.Aggregate(17, (h, v) => h * 31 + v);
    }
}
