using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;
using Workflows.Training.Native;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>Where the optimizer keeps its fp32 master weights and AdamW moments (12 bytes per parameter).</summary>
public enum OptimizerPlacement
{
    /// <summary>On the training device, updated by a handful of libtorch kernels over flat buffers.</summary>
    Device,
    /// <summary>In host memory, updated on the CPU (ZeRO-Offload's design); the device keeps parameters and gradients only.</summary>
    Host,
}

/// <summary>AdamW's hyper-parameters (PyTorch's defaults except betas, which follow LLaMA).</summary>
public sealed record AdamWSettings(double Beta1 = 0.9, double Beta2 = 0.95, double Epsilon = 1e-8, double WeightDecay = 0.0);

/// <summary>
/// AdamW over fp32 master weights for a contiguous range of the flat parameter space (the whole model on one GPU;
/// one rank's shard under ZeRO). Each step reads the float32 gradients of the range from the device, updates the
/// master weights and both moments, and writes the parameters back in their own type (bf16 or fp32).
/// The update is PyTorch's AdamW: <c>p ← p(1−lr·wd)</c>; <c>m ← β₁m + (1−β₁)g</c>; <c>v ← β₂v + (1−β₂)g²</c>;
/// <c>p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε)</c>, with <c>g</c> the gradient times the clipping coefficient.
/// </summary>
public abstract class MasterAdamW : IDisposable
{
    protected MasterAdamW(long start, long count, AdamWSettings settings)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        (Start, Count, Settings) = (start, count, settings);
    }

    /// <summary>First element of the flat parameter space this optimizer owns.</summary>
    public long Start { get; }
    /// <summary>Elements it owns.</summary>
    public long Count { get; }
    public AdamWSettings Settings { get; }
    /// <summary>Optimizer steps taken (AdamW's t).</summary>
    public int StepCount { get; protected set; }
    public abstract OptimizerPlacement Placement { get; }

    /// <summary>Creates one for the range [start, start+count) of the flat parameter space; set its master weights before the first step.</summary>
    public static MasterAdamW Create(OptimizerPlacement placement, long start, long count, AdamWSettings settings, Device device) =>
        placement == OptimizerPlacement.Host ? new HostAdamW(start, count, settings, device) : new DeviceAdamW(start, count, settings, device);

    /// <summary>Copies float32 master weights for elements [offset, offset+values.numel()) of this range.</summary>
    public abstract void SetMaster(long offset, Tensor values);

    /// <summary>The float32 master weights of elements [offset, offset+count) of this range, as a new CPU tensor.</summary>
    public abstract Tensor ReadMaster(long offset, long count);

    /// <summary>Writes the master weights into <paramref name="parameters"/> (this range's flat parameters, any type and device), e.g. after a restore.</summary>
    public void CopyMasterTo(Tensor parameters)
    {
        if (parameters.numel() != Count) throw new ArgumentException($"expected {Count} parameters, got {parameters.numel()}", nameof(parameters));
        const long slice = 1L << 26;
        using var _ = no_grad();
        for (long start = 0; start < Count; start += slice)
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(slice, Count - start);
            parameters.narrow(0, start, n).copy_(ReadMaster(start, n));
        }
    }

    /// <summary>
    /// One AdamW step. <paramref name="gradients"/> and <paramref name="parameters"/> are the device's flat float32
    /// gradients and flat parameters of this range (contiguous, <see cref="Count"/> elements each); the gradients
    /// are multiplied by <paramref name="gradientScale"/> (the clipping coefficient), possibly in place: they are
    /// consumed by the step.
    /// </summary>
    public void Step(double learningRate, double gradientScale, Tensor gradients, Tensor parameters)
    {
        if (gradients.numel() != Count || parameters.numel() != Count)
            throw new ArgumentException($"expected {Count} gradients and parameters, got {gradients.numel()} and {parameters.numel()}");
        StepCount++;
        Update(learningRate, gradientScale, gradients, parameters);
    }

    protected abstract void Update(double learningRate, double gradientScale, Tensor gradients, Tensor parameters);

    /// <summary>Writes the moments (and the step count) as <c>count, step, m[count], v[count]</c> (little-endian).</summary>
    public void SaveMoments(Stream stream)
    {
        Span<byte> header = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(header, Count);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], StepCount);
        stream.Write(header);
        WriteMoments(stream);
    }

    public void LoadMoments(Stream stream)
    {
        Span<byte> header = stackalloc byte[16];
        stream.ReadExactly(header);
        long count = BinaryPrimitives.ReadInt64LittleEndian(header);
        if (count != Count) throw new InvalidDataException($"the optimizer state holds {count} elements, this optimizer owns {Count}");
        StepCount = checked((int)BinaryPrimitives.ReadInt64LittleEndian(header[8..]));
        ReadMoments(stream);
    }

    protected abstract void WriteMoments(Stream stream);
    protected abstract void ReadMoments(Stream stream);

    /// <summary>The AdamW moments of elements [offset, offset+count) of this range, as new CPU float32 tensors.</summary>
    public abstract (Tensor ExpAvg, Tensor ExpAvgSq) ReadMomentRange(long offset, long count);

    /// <summary>Sets the moments of elements [offset, offset+m.numel()) of this range.</summary>
    public abstract void SetMomentRange(long offset, Tensor expAvg, Tensor expAvgSq);

    /// <summary>Sets AdamW's step count (restoring a checkpoint written by another layout of ranks).</summary>
    public void SetStepCount(int steps) => StepCount = steps;

    /// <summary>Bytes this optimizer holds (master weights and moments).</summary>
    public long StateBytes => 12 * Count;

    public abstract void Dispose();
}

/// <summary>Master weights and moments on the training device, updated by libtorch kernels over large slices.</summary>
public sealed class DeviceAdamW : MasterAdamW
{
    /// <summary>Elements per slice: keeps the one temporary (the denominator) at 128 MiB next to 7B-sized buffers.</summary>
    public const long SliceElements = 1L << 25;

    readonly Tensor master, expAvg, expAvgSq;

    public DeviceAdamW(long start, long count, AdamWSettings settings, Device device) : base(start, count, settings)
    {
        master = empty(count, ScalarType.Float32, device).DetachFromDisposeScope();
        expAvg = zeros(count, ScalarType.Float32, device).DetachFromDisposeScope();
        expAvgSq = zeros(count, ScalarType.Float32, device).DetachFromDisposeScope();
    }

    public override OptimizerPlacement Placement => OptimizerPlacement.Device;

    public override void SetMaster(long offset, Tensor values)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        master.narrow(0, offset, values.numel()).copy_(values.reshape(-1));
    }

    public override Tensor ReadMaster(long offset, long count)
    {
        using var slot = master.narrow(0, offset, count);
        return slot.to(ScalarType.Float32, CPU, copy: true);
    }

    public override (Tensor ExpAvg, Tensor ExpAvgSq) ReadMomentRange(long offset, long count)
    {
        using var m = expAvg.narrow(0, offset, count);
        using var v = expAvgSq.narrow(0, offset, count);
        return (m.to(ScalarType.Float32, CPU, copy: true), v.to(ScalarType.Float32, CPU, copy: true));
    }

    public override void SetMomentRange(long offset, Tensor m, Tensor v)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        expAvg.narrow(0, offset, m.numel()).copy_(m.reshape(-1));
        expAvgSq.narrow(0, offset, v.numel()).copy_(v.reshape(-1));
    }

    protected override void Update(double learningRate, double gradientScale, Tensor gradients, Tensor parameters)
    {
        var s = Settings;
        double correction1 = 1 - Math.Pow(s.Beta1, StepCount), correction2 = 1 - Math.Pow(s.Beta2, StepCount);
        using var _ = no_grad();
        for (long start = 0; start < Count; start += SliceElements)
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(SliceElements, Count - start);
            var (p, m, v) = (master.narrow(0, start, n), expAvg.narrow(0, start, n), expAvgSq.narrow(0, start, n));
            var g = gradients.narrow(0, start, n);
            if (gradientScale != 1) g.mul_(gradientScale);   // in place: no gradient-sized temporary
            if (s.WeightDecay != 0) p.mul_(1 - learningRate * s.WeightDecay);
            m.mul_(s.Beta1).add_(g, alpha: 1 - s.Beta1);
            v.mul_(s.Beta2).addcmul_(g, g, value: 1 - s.Beta2);
            var denominator = v.sqrt().div_(Math.Sqrt(correction2)).add_(s.Epsilon);
            p.addcdiv_(m, denominator, value: -learningRate / correction1);
            parameters.narrow(0, start, n).copy_(p);
        }
    }

    protected override void WriteMoments(Stream stream)
    {
        foreach (var t in new[] { expAvg, expAvgSq })
            for (long start = 0; start < Count; start += SliceElements)
            {
                using var scope = NewDisposeScope();
                stream.Write(t.narrow(0, start, Math.Min(SliceElements, Count - start)).cpu().bytes);
            }
    }

    protected override void ReadMoments(Stream stream)
    {
        using var _ = no_grad();
        foreach (var t in new[] { expAvg, expAvgSq })
            for (long start = 0; start < Count; start += SliceElements)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(SliceElements, Count - start);
                var bytes = new byte[n * 4];
                stream.ReadExactly(bytes);
                var host = empty(n, ScalarType.Float32);
                host.bytes = bytes;
                t.narrow(0, start, n).copy_(host);
            }
    }

    public override void Dispose()
    {
        master.Dispose();
        expAvg.Dispose();
        expAvgSq.Dispose();
    }
}

/// <summary>
/// Master weights and moments in host memory, updated by the CPU: vectorised (<see cref="Vector{T}"/>) and spread
/// over all cores, one pass over memory per step (read g, p, m, v; write p, m, v and the parameter), where libtorch's
/// CPU AdamW makes a pass per operation. On a GPU the step is pipelined over slices through page-locked staging
/// buffers: while the CPU updates slice k, the copy engines bring slice k+1's gradients down and take slice k−1's
/// parameters up, on streams of their own. On a CPU device gradients and parameters are read and written in place.
/// <para>
/// Only the staging buffers are page-locked (four of 64 MiB), not the 12 bytes per parameter of state: locking
/// 80 GB of host memory for a 7B model takes long and is what the kernel is least happy to give; only what crosses
/// PCIe needs it.
/// </para>
/// </summary>
public sealed unsafe class HostAdamW : MasterAdamW
{
    /// <summary>Elements per pipeline slice (64 MiB of float32 gradients).</summary>
    public const long SliceElements = 1L << 24;
    const int Block = 1 << 16; // elements per parallel work item

    readonly float* master, expAvg, expAvgSq;
    readonly bool cuda;
    readonly float*[] gradientStaging = new float*[2];
    readonly byte*[] parameterStaging = new byte*[2];
    readonly nint[] downStreams = new nint[2], upStreams = new nint[2];
    bool disposed;

    public HostAdamW(long start, long count, AdamWSettings settings, Device device) : base(start, count, settings)
    {
        cuda = device.type == DeviceType.CUDA;
        nuint bytes = (nuint)(count * sizeof(float));
        master = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        expAvg = (float*)NativeMemory.AllocZeroed(bytes);
        expAvgSq = (float*)NativeMemory.AllocZeroed(bytes);
        if (!cuda) return;
        CudaRuntime.SetDevice(device.index < 0 ? 0 : device.index);
        for (int i = 0; i < 2; i++)
        {
            gradientStaging[i] = (float*)NativeMemory.AlignedAlloc((nuint)(SliceElements * 4), 4096);
            parameterStaging[i] = (byte*)NativeMemory.AlignedAlloc((nuint)(SliceElements * 4), 4096);
            CudaRuntime.PageLock((nint)gradientStaging[i], SliceElements * 4);
            CudaRuntime.PageLock((nint)parameterStaging[i], SliceElements * 4);
            downStreams[i] = CudaRuntime.CreateStream();
            upStreams[i] = CudaRuntime.CreateStream();
        }
    }

    public override OptimizerPlacement Placement => OptimizerPlacement.Host;

    public override void SetMaster(long offset, Tensor values) => Write(master, offset, values);

    public override Tensor ReadMaster(long offset, long count) => Read(master, offset, count);

    public override (Tensor ExpAvg, Tensor ExpAvgSq) ReadMomentRange(long offset, long count) => (Read(expAvg, offset, count), Read(expAvgSq, offset, count));

    public override void SetMomentRange(long offset, Tensor m, Tensor v)
    {
        Write(expAvg, offset, m);
        Write(expAvgSq, offset, v);
    }

    Tensor Read(float* buffer, long offset, long count)
    {
        if (offset < 0 || offset + count > Count) throw new ArgumentOutOfRangeException(nameof(offset));
        var result = empty(count, ScalarType.Float32);
        Buffer.MemoryCopy(buffer + offset, (void*)TensorPointers.DataPointer(result), count * 4, count * 4);
        return result;
    }

    void Write(float* buffer, long offset, Tensor values)
    {
        long n = values.numel();
        if (offset < 0 || offset + n > Count) throw new ArgumentOutOfRangeException(nameof(offset));
        bool direct = values.dtype == ScalarType.Float32 && values.device_type == DeviceType.CPU && values.is_contiguous();
        var host = direct ? values : values.to(ScalarType.Float32, CPU).contiguous();
        try
        {
            Buffer.MemoryCopy((void*)TensorPointers.DataPointer(host), buffer + offset, (Count - offset) * 4, n * 4);
        }
        finally
        {
            if (!direct) host.Dispose();
        }
    }

    protected override void Update(double learningRate, double gradientScale, Tensor gradients, Tensor parameters)
    {
        bool bf16 = parameters.dtype == ScalarType.BFloat16;
        if (!bf16 && parameters.dtype != ScalarType.Float32) throw new ArgumentException($"parameters of type {parameters.dtype} are not supported", nameof(parameters));
        if (gradients.dtype != ScalarType.Float32) throw new ArgumentException("gradients must be float32", nameof(gradients));
        var kernel = new AdamWKernel(Settings, StepCount, learningRate, gradientScale);
        byte* g = (byte*)TensorPointers.DataPointer(gradients), p = (byte*)TensorPointers.DataPointer(parameters);
        int parameterSize = bf16 ? 2 : 4;

        if (!cuda)
        {
            UpdateSlice(kernel, 0, Count, (float*)g, p, bf16);
            return;
        }

        // Everything the backward pass queued must be done before its gradients are copied on our streams.
        CudaRuntime.Synchronize();
        long slices = (Count + SliceElements - 1) / SliceElements;
        long Length(long s) => Math.Min(SliceElements, Count - s * SliceElements);
        void Down(long s) => CudaRuntime.CopyAsync((nint)gradientStaging[s % 2], (nint)(g + s * SliceElements * 4), Length(s) * 4,
            CudaRuntime.CopyKind.DeviceToHost, downStreams[s % 2]);
        Down(0);
        for (long s = 0; s < slices; s++)
        {
            int b = (int)(s % 2);
            CudaRuntime.SynchronizeStream(downStreams[b]);   // slice s's gradients are here
            if (s + 1 < slices) Down(s + 1);                  // the next slice comes down while we compute
            CudaRuntime.SynchronizeStream(upStreams[b]);     // slice s−2's parameters have left this buffer
            UpdateSlice(kernel, s * SliceElements, Length(s), gradientStaging[b], parameterStaging[b], bf16);
            CudaRuntime.CopyAsync((nint)(p + s * SliceElements * parameterSize), (nint)parameterStaging[b], Length(s) * parameterSize,
                CudaRuntime.CopyKind.HostToDevice, upStreams[b]);
        }
        CudaRuntime.SynchronizeStream(upStreams[0]);
        CudaRuntime.SynchronizeStream(upStreams[1]);
    }

    // Elements [start, start+n) of the range; gradients and parameters point at element start.
    void UpdateSlice(AdamWKernel kernel, long start, long n, float* gradients, byte* parameters, bool bf16)
    {
        long blocks = (n + Block - 1) / Block;
        float* p = master + start, m = expAvg + start, v = expAvgSq + start;
        Parallel.For(0L, blocks, i =>
        {
            long from = i * Block, length = Math.Min(Block, n - from);
            kernel.Run(p + from, m + from, v + from, gradients + from, parameters + (bf16 ? 2 : 4) * from, length, bf16);
        });
    }

    protected override void WriteMoments(Stream stream)
    {
        foreach (var buffer in new[] { (nint)expAvg, (nint)expAvgSq })
            for (long start = 0; start < Count; start += SliceElements)
                stream.Write(new ReadOnlySpan<byte>((float*)buffer + start, checked((int)(Math.Min(SliceElements, Count - start) * 4))));
    }

    protected override void ReadMoments(Stream stream)
    {
        foreach (var buffer in new[] { (nint)expAvg, (nint)expAvgSq })
            for (long start = 0; start < Count; start += SliceElements)
                stream.ReadExactly(new Span<byte>((float*)buffer + start, checked((int)(Math.Min(SliceElements, Count - start) * 4))));
    }

    public override void Dispose()
    {
        if (disposed) return;
        disposed = true;
        NativeMemory.AlignedFree(master);
        NativeMemory.Free(expAvg);
        NativeMemory.Free(expAvgSq);
        if (!cuda) return;
        for (int i = 0; i < 2; i++)
        {
            CudaRuntime.DestroyStream(downStreams[i]);
            CudaRuntime.DestroyStream(upStreams[i]);
            CudaRuntime.PageUnlock((nint)gradientStaging[i]);
            CudaRuntime.PageUnlock((nint)parameterStaging[i]);
            NativeMemory.AlignedFree(gradientStaging[i]);
            NativeMemory.AlignedFree(parameterStaging[i]);
        }
    }
}

/// <summary>
/// The AdamW update of one step over raw float32 buffers: the same operations, in the same order and precision, as
/// <see cref="DeviceAdamW"/>'s libtorch kernels (scalars computed in double, then rounded to float as libtorch
/// rounds a scalar for a float tensor), and the parameter written as float32 or bf16 (round to nearest even).
/// </summary>
public readonly unsafe struct AdamWKernel
{
    readonly float decay, beta1, beta2, oneMinusBeta1, oneMinusBeta2, sqrtCorrection2, epsilon, stepSize, gradientScale;
    readonly bool decays, scales;

    public AdamWKernel(AdamWSettings s, int step, double learningRate, double gradientScale)
    {
        double correction1 = 1 - Math.Pow(s.Beta1, step), correction2 = 1 - Math.Pow(s.Beta2, step);
        decay = (float)(1 - learningRate * s.WeightDecay);
        (beta1, beta2) = ((float)s.Beta1, (float)s.Beta2);
        (oneMinusBeta1, oneMinusBeta2) = ((float)(1 - s.Beta1), (float)(1 - s.Beta2));
        sqrtCorrection2 = (float)Math.Sqrt(correction2);
        epsilon = (float)s.Epsilon;
        stepSize = (float)(-learningRate / correction1);
        this.gradientScale = (float)gradientScale;
        decays = s.WeightDecay != 0;
        scales = gradientScale != 1;
    }

    public void Run(float* p, float* m, float* v, float* g, byte* parameters, long n, bool bf16)
    {
        long i = 0;
        int width = Vector<float>.Count;
        if (bf16)
            for (; i + 2 * width <= n; i += 2 * width)
            {
                var low = Next(p, m, v, g, i);
                var high = Next(p, m, v, g, i + width);
                Vector.Store(Vector.Narrow(Bf16.Bits(low), Bf16.Bits(high)), (ushort*)parameters + i);
            }
        else
            for (; i + width <= n; i += width) Vector.Store(Next(p, m, v, g, i), (float*)parameters + i);

        for (; i < n; i++)
        {
            float gi = scales ? g[i] * gradientScale : g[i];
            float pi = decays ? p[i] * decay : p[i];
            float mi = MathF.FusedMultiplyAdd(gi, oneMinusBeta1, m[i] * beta1);
            float vi = v[i] * beta2 + oneMinusBeta2 * gi * gi;
            float denominator = MathF.Sqrt(vi) / sqrtCorrection2 + epsilon;
            pi += stepSize * mi / denominator;
            (m[i], v[i], p[i]) = (mi, vi, pi);
            if (bf16) ((ushort*)parameters)[i] = Bf16.FromFloat(pi);
            else ((float*)parameters)[i] = pi;
        }
    }

    Vector<float> Next(float* p, float* m, float* v, float* g, long at)
    {
        var gi = Vector.Load(g + at);
        if (scales) gi *= new Vector<float>(gradientScale);
        var pi = Vector.Load(p + at);
        if (decays) pi *= new Vector<float>(decay);
        var mi = Vector.FusedMultiplyAdd(gi, new Vector<float>(oneMinusBeta1), Vector.Load(m + at) * new Vector<float>(beta1));
        var vi = Vector.Load(v + at) * new Vector<float>(beta2) + new Vector<float>(oneMinusBeta2) * gi * gi;
        var denominator = Vector.SquareRoot(vi) / new Vector<float>(sqrtCorrection2) + new Vector<float>(epsilon);
        pi += new Vector<float>(stepSize) * mi / denominator;
        Vector.Store(mi, m + at);
        Vector.Store(vi, v + at);
        Vector.Store(pi, p + at);
        return pi;
    }
}

/// <summary>bfloat16 conversion as libtorch does it: round to nearest even, NaN to the canonical quiet NaN.</summary>
public static class Bf16
{
    public static ushort FromFloat(float value)
    {
        if (float.IsNaN(value)) return 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    public static float ToFloat(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    /// <summary>The bf16 bits of each lane (in the low 16 bits), rounded to nearest even; NaN lanes become 0x7FC0.</summary>
    public static Vector<uint> Bits(Vector<float> values)
    {
        var bits = Vector.AsVectorUInt32(values);
        var rounded = (bits + new Vector<uint>(0x7FFF) + ((bits >> 16) & Vector<uint>.One)) >> 16;
        var nan = ~Vector.AsVectorUInt32(Vector.Equals(values, values));
        return Vector.ConditionalSelect(nan, new Vector<uint>(0x7FC0), rounded);
    }
}
