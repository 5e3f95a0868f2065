using System.Diagnostics;
using Workflows.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training.Bench;

/// <summary>Model shapes the benchmarks know by name, and the FLOP counts behind tokens/s → MFU.</summary>
public static class BenchModels
{
    public static readonly string[] PresetNames = ["tiny", "200m", "1b", "7b"];

    /// <summary>
    /// tiny: 2 layers, d=128, GQA 4/2 heads, 1,024-token vocabulary (CPU smoke runs). 200m: 12 layers, d=1024,
    /// 16 heads, SwiGLU 2,816, 32K vocabulary, untied (≈220M parameters; the 12-layer d=1024 baseline).
    /// 1b: TinyLlama-1.1B's shape (22 layers, d=2048, 32 query / 4 KV heads, SwiGLU 5,632, 32K vocabulary).
    /// 7b: LLaMA-2 7B's shape (random init).
    /// </summary>
    public static LlamaConfig Preset(string name) => name.ToLowerInvariant() switch
    {
        "tiny" => new LlamaConfig(1024, 128, 344, 2, 4, 2, 4096),
        "200m" => new LlamaConfig(32000, 1024, 2816, 12, 16, 16, 4096),
        "1b" => new LlamaConfig(32000, 2048, 5632, 22, 32, 4, 4096),
        "7b" => LlamaConfig.Llama2Shape7B,
        _ => throw new ArgumentException($"unknown preset \"{name}\" ({string.Join(", ", PresetNames)})", nameof(name)),
    };

    /// <summary>Parameters that take part in matmuls: every projection and the LM head (not the embedding lookup or norms).</summary>
    public static long MatmulParameters(LlamaConfig c)
    {
        long d = c.HiddenSize, kv = (long)c.NumKeyValueHeads * c.HeadDim;
        return c.NumLayers * (2 * d * d + 2 * d * kv + 3 * d * c.IntermediateSize) + (long)c.VocabSize * d;
    }

    /// <summary>
    /// Training FLOPs per token at <paramref name="context"/>: 6·N (N = <see cref="MatmulParameters"/>) plus causal
    /// attention, 6·L·d·T (QKᵀ and AV cost 2·d·(p+1) each per layer at position p: 2·L·d·T per token on average
    /// forward, ×3 with backward). Activation checkpointing's recomputation is not counted (model FLOPs, not
    /// hardware FLOPs). <paramref name="palm"/> = PaLM's convention, 12·L·d·T, which counts the masked half.
    /// </summary>
    public static double TrainingFlopsPerToken(LlamaConfig c, int context, bool palm = false) =>
        6.0 * MatmulParameters(c) + (palm ? 12.0 : 6.0) * c.NumLayers * c.HiddenSize * (double)context;

    /// <summary>Prefill FLOPs per token of a prompt of <paramref name="length"/>: 2·(N − LM head) + 2·L·d·T (causal); the head runs on the last position only.</summary>
    public static double PrefillFlopsPerToken(LlamaConfig c, int length) =>
        2.0 * (MatmulParameters(c) - (long)c.VocabSize * c.HiddenSize) + 2.0 * c.NumLayers * c.HiddenSize * (double)length;

    /// <summary>Waits for the device's queued work (CUDA kernels run asynchronously; timings need this).</summary>
    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    /// <summary>
    /// Matmul throughput of <paramref name="size"/>³ products in <paramref name="dtype"/>, FLOP/s (2·n³ per product):
    /// the peak MFU is measured against (the same measurement the twin makes in PyTorch).
    /// </summary>
    public static double MatmulPeak(Device device, int size, int iterations, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var a = randn([size, size], dtype, device);
        var b = randn([size, size], dtype, device);
        for (int i = 0; i < 3; i++) a.matmul(b).Dispose();
        Synchronize(device);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) a.matmul(b).Dispose();
        Synchronize(device);
        return 2.0 * size * (double)size * size * iterations / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Random token ids in [0, vocab), reproducible from <paramref name="seed"/>.</summary>
    public static int[][] RandomSequences(int count, int length, int vocab, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray()).ToArray();
    }
}
