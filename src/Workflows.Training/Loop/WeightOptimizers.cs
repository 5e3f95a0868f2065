using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>What the loop needs from an optimizer: zero, clip, step, and save/restore its state.</summary>
public interface IWeightOptimizer : IDisposable
{
    /// <summary>File name of the state inside a checkpoint folder.</summary>
    string StateFileName { get; }
    void ZeroGradients();
    /// <summary>Scales the gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before.</summary>
    double ClipGradientNorm(double maxNorm);
    void Step(double learningRate);
    void SaveState(string path);
    void LoadState(string path);

    public static IWeightOptimizer Create(OptimizerKind kind, nn.Module model, TrainingOptions o) => kind switch
    {
        OptimizerKind.FlatAdamW => new FlatAdamW(model, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay),
        _ => new TorchSharpAdamW(model, o),
    };
}

/// <summary>TorchSharp's <c>optim.AdamW</c> over the parameters one by one.</summary>
public sealed class TorchSharpAdamW(nn.Module model, TrainingOptions o) : IWeightOptimizer
{
    readonly AdamW optimizer = optim.AdamW(model.parameters(), o.LearningRate, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay);

    public string StateFileName => "optimizer.bin";
    public void ZeroGradients() => model.zero_grad();
    public double ClipGradientNorm(double maxNorm) => nn.utils.clip_grad_norm_(model.parameters(), maxNorm);

    public void Step(double learningRate)
    {
        foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
        optimizer.step();
    }

    public void SaveState(string path) => optimizer.save_state_dict(path);
    public void LoadState(string path) => optimizer.load_state_dict(path);
    public void Dispose() => optimizer.Dispose();
}

/// <summary>
/// AdamW over flat buffers. TorchSharp has no <c>_foreach_</c> ops and no fused AdamW, so its AdamW launches about
/// ten kernels per parameter tensor per step (≈1,200 for a 12-layer model, ≈3,000 for LLaMA-2 7B), plus two per
/// tensor for gradient clipping. Here every parameter becomes a view into one float32 buffer (<c>set_</c>) and
/// every gradient a view into another (assigned before the first backward; autograd then accumulates into it in
/// place), so zeroing, the global norm, clipping and the AdamW update are a handful of ops over the whole model.
/// The update is PyTorch's/TorchSharp's AdamW exactly: <c>p ← p(1−lr·wd)</c>; <c>m ← β₁m + (1−β₁)g</c>;
/// <c>v ← β₂v + (1−β₂)g²</c>; <c>p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)</c>. It runs over slices of
/// <see cref="SliceElements"/> so the one temporary (the denominator) stays small next to 7B-sized buffers.
/// The module must not be moved to another device or type afterwards (that would replace the views).
/// </summary>
public sealed class FlatAdamW : IWeightOptimizer
{
    public const long SliceElements = 1L << 27;

    readonly Tensor weights, gradients, expAvg, expAvgSq;
    readonly double beta1, beta2, epsilon, weightDecay;
    int step;

    public FlatAdamW(nn.Module model, double beta1, double beta2, double epsilon, double weightDecay)
    {
        (this.beta1, this.beta2, this.epsilon, this.weightDecay) = (beta1, beta2, epsilon, weightDecay);
        var parameters = model.parameters().ToList();
        if (parameters.Any(p => p.dtype != ScalarType.Float32)) throw new ArgumentException("flat AdamW expects float32 weights");
        var device = parameters[0].device;
        long total = parameters.Sum(p => p.numel());
        // Weights first, each parameter's old storage released as it moves in, then the other buffers: at 7B the
        // old and new weights together are 54 GB, everything at once would be 135 GB of a 139 GB card.
        using var _ = no_grad();
        weights = empty(total, ScalarType.Float32, device).DetachFromDisposeScope();
        long offset = 0;
        foreach (var p in parameters)
        {
            var slot = weights.narrow(0, offset, p.numel()).view(p.shape);
            slot.copy_(p);
            p.set_(slot);
            offset += p.numel();
        }
        gradients = zeros(total, ScalarType.Float32, device).DetachFromDisposeScope();
        offset = 0;
        foreach (var p in parameters)
        {
            p.grad = gradients.narrow(0, offset, p.numel()).view(p.shape);
            offset += p.numel();
        }
        expAvg = zeros(total, ScalarType.Float32, device).DetachFromDisposeScope();
        expAvgSq = zeros(total, ScalarType.Float32, device).DetachFromDisposeScope();
    }

    public string StateFileName => "optimizer-flat.bin";
    public long Elements => weights.numel();

    public void ZeroGradients() => gradients.zero_();

    public double ClipGradientNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        var norm = gradients.norm();
        double value = norm.item<float>();
        // PyTorch's clip_grad_norm_: coefficient max/(norm+1e-6), applied only when below 1.
        if (!double.IsPositiveInfinity(maxNorm) && maxNorm / (value + 1e-6) < 1) gradients.mul_(maxNorm / (value + 1e-6));
        return value;
    }

    public void Step(double learningRate)
    {
        step++;
        double correction1 = 1 - Math.Pow(beta1, step), correction2 = 1 - Math.Pow(beta2, step);
        using var _ = no_grad();
        for (long start = 0; start < weights.numel(); start += SliceElements)
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(SliceElements, weights.numel() - start);
            var (p, g, m, v) = (weights.narrow(0, start, n), gradients.narrow(0, start, n), expAvg.narrow(0, start, n), expAvgSq.narrow(0, start, n));
            if (weightDecay != 0) p.mul_(1 - learningRate * weightDecay);
            m.mul_(beta1).add_(g, alpha: 1 - beta1);
            v.mul_(beta2).addcmul_(g, g, value: 1 - beta2);
            var denominator = (v.sqrt() / Math.Sqrt(correction2)).add_(epsilon);
            p.addcdiv_(m, denominator, value: -learningRate / correction1);
        }
    }

    public void SaveState(string path)
    {
        using var writer = new BinaryWriter(File.Create(path));
        writer.Write(step);
        expAvg.Save(writer);
        expAvgSq.Save(writer);
    }

    public void LoadState(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        step = reader.ReadInt32();
        using var _ = no_grad();
        using (var m = Tensor.Load(reader)) expAvg.copy_(m);
        using (var v = Tensor.Load(reader)) expAvgSq.copy_(v);
    }

    public void Dispose()
    {
        // The parameters still view the weight buffer (its storage lives on through them); only state is freed.
        expAvg.Dispose();
        expAvgSq.Dispose();
    }
}
