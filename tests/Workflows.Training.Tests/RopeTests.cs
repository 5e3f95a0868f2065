using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

/// <summary>
/// RoPE tables against values computed here from the published formulas with plain double math:
/// RoFormer (θ_i = b^(-2i/d), angle = p·θ_i), position interpolation (p/s), HF dynamic NTK
/// (b' = b·((s·L/L₀) − (s−1))^(d/(d−2))) and YaRN (Peng et al. 2023, reference code: ramp over the dimension
/// index between the correction dims of β_fast=32 and β_slow=1, cos/sin scaled by 0.1·ln s + 1).
/// </summary>
public class RopeTests
{
    static readonly long[] Positions = [0, 1, 7, 100, 4095, 4096, 20_000, 81_919];

    static LlamaConfig Llama(RopeScaling rope, double theta = 10_000) =>
        LlamaConfig.Llama2Shape7B with { Rope = rope, RopeTheta = theta };

    static void TablesShouldMatch(LlamaConfig config, int length, Func<long, int, double> referenceAngle, double scale = 1.0)
    {
        var (cos, sin) = RotaryEmbedding.Tables(config, length, CPU, ScalarType.Float32);
        using (cos) using (sin)
        {
            cos.shape.Should().Equal(length, config.HeadDim);
            int half = config.HeadDim / 2;
            foreach (long p in Positions.Where(p => p < length))
                for (int i = 0; i < half; i++)
                {
                    double angle = referenceAngle(p, i);
                    // Both halves of a head carry the same pair frequency (HF's cat(freqs, freqs)).
                    foreach (int column in new[] { i, i + half })
                    {
                        cos[p, column].item<float>().Should().BeApproximately((float)(Math.Cos(angle) * scale), 2e-6f, $"cos at p={p}, i={i}");
                        sin[p, column].item<float>().Should().BeApproximately((float)(Math.Sin(angle) * scale), 2e-6f, $"sin at p={p}, i={i}");
                    }
                }
        }
    }

    [Fact]
    public void Plain_rope_angles_are_position_times_base_to_the_minus_2i_over_d()
    {
        TablesShouldMatch(Llama(RopeScaling.None), 4096, (p, i) => p * Math.Pow(10_000, -2.0 * i / 128));
    }

    [Fact]
    public void A_larger_base_as_in_the_paper_slows_every_rotation_but_the_first()
    {
        TablesShouldMatch(Llama(RopeScaling.None, theta: 5_000_000), 81_920, (p, i) => p * Math.Pow(5_000_000, -2.0 * i / 128));
    }

    [Fact]
    public void Linear_scaling_divides_positions_by_the_factor()
    {
        TablesShouldMatch(Llama(new RopeScaling(RopeScalingKind.Linear, 4)), 16_384, (p, i) => p / 4.0 * Math.Pow(10_000, -2.0 * i / 128));
    }

    [Fact]
    public void Dynamic_ntk_with_the_papers_factor_10_at_80K_uses_a_base_of_about_2_08M()
    {
        var config = Llama(new RopeScaling(RopeScalingKind.DynamicNtk, 10));
        double expectedBase = 10_000 * Math.Pow(10.0 * 81_920 / 4096 - 9, 128.0 / 126);

        expectedBase.Should().BeApproximately(2.076e6, 1e3, "the paper notes derive ≈2.076M for f=10, L=81,920");
        RotaryEmbedding.EffectiveDynamicNtkBase(config, 81_920).Should().BeApproximately(expectedBase, expectedBase * 1e-12);
        TablesShouldMatch(config, 81_920, (p, i) => p * Math.Pow(expectedBase, -2.0 * i / 128));
    }

    [Fact]
    public void Dynamic_ntk_leaves_the_base_alone_up_to_the_original_length()
    {
        var config = Llama(new RopeScaling(RopeScalingKind.DynamicNtk, 10));
        RotaryEmbedding.EffectiveDynamicNtkBase(config, 4096).Should().BeApproximately(10_000, 1e-6);
        TablesShouldMatch(config, 4096, (p, i) => p * Math.Pow(10_000, -2.0 * i / 128));
    }

    [Fact]
    public void Yarn_interpolates_low_frequencies_keeps_high_ones_and_scales_attention()
    {
        const double s = 16, b = 10_000, d = 128, originalLength = 4096;
        var config = Llama(new RopeScaling(RopeScalingKind.Yarn, s, OriginalMaxPositions: 4096));

        // Dimension index at which a pair completes `rotations` turns over the original context.
        double CorrectionDim(double rotations) => d * Math.Log(originalLength / (rotations * 2 * Math.PI)) / (2 * Math.Log(b));
        double low = Math.Floor(CorrectionDim(32)), high = Math.Ceiling(CorrectionDim(1));
        double Frequency(int i)
        {
            double theta = Math.Pow(b, -2.0 * i / d);
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1); // 0: keep θ, 1: θ/s
            return theta * (1 - ramp) + theta / s * ramp;
        }
        double mscale = 0.1 * Math.Log(s) + 1;

        var (inv, factor) = RotaryEmbedding.Frequencies(config, 65_536);
        inv[0].Should().Be(1.0, "the fastest pair rotates more than β_fast times in the original context and is kept");
        inv[^1].Should().BeApproximately(Math.Pow(b, -2.0 * 63 / d) / s, 1e-18, "the slowest pair is fully interpolated");
        factor.Should().BeApproximately(1.2772588722239781, 1e-15);
        TablesShouldMatch(config, 65_536, (p, i) => p * Frequency(i), mscale);
    }

    [Fact]
    public void Rotated_queries_and_keys_depend_only_on_their_relative_position()
    {
        var config = TinyModels.Config(vocab: 10);
        var (cos, sin) = RotaryEmbedding.Tables(config, 64, CPU, ScalarType.Float64);
        manual_seed(3);
        var q = randn(1, 1, 1, config.HeadDim, dtype: ScalarType.Float64).expand(1, 1, 64, config.HeadDim);
        var k = randn(1, 1, 1, config.HeadDim, dtype: ScalarType.Float64).expand(1, 1, 64, config.HeadDim);
        var rq = RotaryEmbedding.Apply(q, cos, sin)[0, 0];
        var rk = RotaryEmbedding.Apply(k, cos, sin)[0, 0];

        double Score(int m, int n) => rq[m].dot(rk[n]).item<double>();
        Score(10, 3).Should().BeApproximately(Score(50, 43), 1e-9);
        Score(5, 5).Should().BeApproximately(Score(60, 60), 1e-9);
        Score(10, 3).Should().NotBeApproximately(Score(10, 4), 1e-6);
    }

    [Fact]
    public void HuggingFace_config_json_of_the_papers_released_7B_model_is_read()
    {
        const string json = """
        {"architectures":["LlamaForCausalLM"],"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu",
         "hidden_size":4096,"initializer_range":0.02,"intermediate_size":11008,"max_position_embeddings":4096,
         "model_type":"llama","num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":32,
         "pretraining_tp":1,"rms_norm_eps":1e-05,"rope_scaling":{"factor":10.0,"type":"dynamic"},
         "rope_theta":10000.0,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.35.2",
         "use_cache":true,"vocab_size":32000}
        """;
        var config = LlamaConfig.FromHuggingFaceJson(json);

        config.Should().Be(LlamaConfig.Llama2Shape7B with { Rope = new RopeScaling(RopeScalingKind.DynamicNtk, 10) });
        config.ParameterCount().Should().Be(6_738_415_616, "LLaMA-2 7B has 6.74B parameters");
        LlamaConfig.FromHuggingFaceJson(config.ToHuggingFaceJson()).Should().Be(config);
        (LlamaConfig.Llama2Shape13B.ParameterCount() / 1e9).Should().BeApproximately(13.0, 0.1);
    }
}
