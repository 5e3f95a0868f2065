using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training.Model;

/// <summary>
/// Rotary position embedding (RoPE) with HuggingFace transformers' conventions: frequencies
/// <c>θ_i = base^(-2i/d)</c> for <c>i &lt; d/2</c>, the cos/sin tables duplicated over both halves of a head
/// (<c>cat(freqs, freqs)</c>) and <c>rotate_half(x) = cat(-x₂, x₁)</c>. Frequencies are computed in double
/// precision (HF uses float32), so tables at 80K positions are exact to float32 rounding.
/// </summary>
public static class RotaryEmbedding
{
    /// <summary>
    /// The per-pair inverse frequencies and the attention factor (the scale applied to cos and sin; 1 except YaRN)
    /// used for sequences of <paramref name="sequenceLength"/> positions.
    /// </summary>
    public static (double[] InverseFrequencies, double AttentionFactor) Frequencies(LlamaConfig config, int sequenceLength)
    {
        int dim = config.HeadDim;
        double theta = config.RopeTheta;
        var scaling = config.RopeScaling;
        int originalMax = scaling.OriginalMaxPositions ?? config.MaxPositionEmbeddings;
        double factor = scaling.Factor;

        double[] Plain(double b)
        {
            var f = new double[dim / 2];
            for (int i = 0; i < f.Length; i++) f[i] = 1.0 / Math.Pow(b, 2.0 * i / dim);
            return f;
        }

        switch (scaling.Kind)
        {
            case RopeScalingKind.None:
                return (Plain(theta), 1.0);

            case RopeScalingKind.Linear:
                // Position interpolation (Chen et al. 2023): positions divided by the factor.
                return (Plain(theta).Select(f => f / factor).ToArray(), 1.0);

            case RopeScalingKind.DynamicNtk:
            {
                // HF "dynamic": base' = base·((f·L/L₀) − (f−1))^(d/(d−2)) once L exceeds L₀, else the plain base.
                // The paper's released configs use f=10, L₀=4096: at L=81,920 the base becomes ≈2.08M.
                double b = sequenceLength > originalMax
                    ? theta * Math.Pow(factor * sequenceLength / originalMax - (factor - 1), dim / (dim - 2.0))
                    : theta;
                return (Plain(b), 1.0);
            }

            case RopeScalingKind.Yarn:
                return Yarn(dim, theta, factor, originalMax, scaling.BetaFast ?? 32, scaling.BetaSlow ?? 1, scaling.AttentionFactor);

            default:
                throw new ArgumentOutOfRangeException(nameof(config), scaling.Kind, "unknown RoPE scaling");
        }
    }

    /// <summary>The base that dynamic NTK scaling uses at <paramref name="sequenceLength"/> (for plans and logs).</summary>
    public static double EffectiveDynamicNtkBase(LlamaConfig config, int sequenceLength)
    {
        var f = Frequencies(config with { Rope = config.RopeScaling with { Kind = RopeScalingKind.DynamicNtk } }, sequenceLength).InverseFrequencies;
        // θ_1 = base^(-2/d)  ⇒  base = θ_1^(-d/2)
        return Math.Pow(f[1], -config.HeadDim / 2.0);
    }

    // YaRN (Peng et al. 2023) as in its reference code and HF: dimensions whose wavelength fits fewer than
    // beta_slow times into the original context are interpolated (θ/s), those fitting more than beta_fast times
    // are kept (θ), with a linear ramp over the dimension index in between; cos/sin are scaled by 0.1·ln(s)+1.
    static (double[], double) Yarn(int dim, double theta, double factor, int originalMax, double betaFast, double betaSlow, double? attentionFactor)
    {
        double CorrectionDim(double rotations) =>
            dim * Math.Log(originalMax / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrectionDim(betaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(betaSlow)), dim - 1);
        if (low == high) high += 0.001;

        var inv = new double[dim / 2];
        for (int i = 0; i < inv.Length; i++)
        {
            double extrapolated = 1.0 / Math.Pow(theta, 2.0 * i / dim);
            double interpolated = extrapolated / factor;
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double keep = 1 - ramp; // share of the unscaled frequency
            inv[i] = interpolated * (1 - keep) + extrapolated * keep;
        }
        double af = attentionFactor ?? (factor <= 1 ? 1.0 : 0.1 * Math.Log(factor) + 1.0);
        return (inv, af);
    }

    /// <summary>cos and sin tables of shape [sequenceLength, headDim] for positions 0..sequenceLength-1.</summary>
    public static (Tensor Cos, Tensor Sin) Tables(LlamaConfig config, int sequenceLength, Device device, ScalarType dtype) =>
        Tables(config, sequenceLength, 0, sequenceLength, device, dtype);

    /// <summary>
    /// cos and sin tables of shape [count, headDim] for positions start..start+count-1, with the frequencies of a
    /// sequence of <paramref name="scalingLength"/> tokens (only dynamic NTK depends on it: the base follows the
    /// length). Cached inference uses this: a chunk at an offset gets the rows a full-length table would have.
    /// </summary>
    public static (Tensor Cos, Tensor Sin) Tables(LlamaConfig config, int scalingLength, long start, long count, Device device, ScalarType dtype)
    {
        var (inv, attentionFactor) = Frequencies(config, scalingLength);
        using var scope = NewDisposeScope();
        var positions = arange(start, start + count, dtype: ScalarType.Float64);
        var angles = outer(positions, tensor(inv, dtype: ScalarType.Float64));
        var both = cat([angles, angles], dim: -1);
        var cos = (both.cos() * attentionFactor).to(dtype, device);
        var sin = (both.sin() * attentionFactor).to(dtype, device);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>Rotates <paramref name="x"/> [batch, heads, T, headDim] by the tables [T, headDim].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([x2.neg(), x1], dim: -1);
        return x * cos + rotated * sin;
    }
}
