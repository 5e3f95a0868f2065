using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Planning;

/// <summary>One line of a memory plan: what, how many bytes per GPU, and the formula that gave them.</summary>
public sealed record MemoryRow(string What, long Bytes, string Formula);

/// <summary>
/// Device memory per GPU for one placement of the optimizer state, at the experiment's context and micro-batch.
/// </summary>
/// <param name="Placement">gpu or cpu: where the fp32 master weights and AdamW moments live.</param>
/// <param name="ZeroStage">0 on one GPU; 2 across several (gradients and optimizer state sharded); 3 also shards the parameters (chosen only when no stage-2 plan fits).</param>
/// <param name="HostBytes">Host memory the optimizer needs per GPU (cpu placement).</param>
/// <param name="Budget">Bytes a run may plan to use: the device's memory less a margin for the allocator's fragmentation.</param>
public sealed record MemoryPlan(string Placement, int ZeroStage, IReadOnlyList<MemoryRow> Rows, long HostBytes, long DeviceBytes, long Budget)
{
    public long Total => Rows.Sum(r => r.Bytes);
    public bool Fits => Total <= Budget;
}

/// <summary>The memory plans of an experiment: the one chosen, and why.</summary>
/// <param name="Chosen">The plan the run uses (training.optimizer.offload, or auto's pick); null when nothing fits.</param>
/// <param name="Candidates">Every placement and ZeRO stage considered, in order of preference.</param>
/// <param name="Note">Why this choice, or why nothing fits.</param>
public sealed record MemoryChoice(string Gpu, int GpuCount, MemoryPlan? Chosen, IReadOnlyList<MemoryPlan> Candidates, string Note);

/// <summary>
/// Per-GPU memory of a training run with wf's trainer (bf16 parameters, fp32 gradient accumulation buffer, fp32
/// master weights + AdamW moments on the GPU or in host memory, block inputs kept for recomputation), computed before
/// the run so a run that cannot fit is refused at validate instead of failing after hours in a queue.
/// <para>
/// Calibration (one H200, <c>wf bench train --preset 7b --offload cpu</c>, the PyTorch twin's allocator peaks for the
/// same scheme, 2026-12-04): the working set of one block's recomputation and backward is 243 KB per token for
/// LLaMA-2 7B at 32K, 64K and 80K (within 1%), modelled as <see cref="BlockWorkingBytesPerUnit"/> × (6·hidden + 2·intermediate)
/// bytes per token; on TinyLlama-1.1B's shape that model is 14% low and on the 200M shape the loss chunk dominates.
/// Planned totals against the measured peaks: 7B at 32K/64K/80K +1.3/+0.9/+0.7%, 1.1B at 32K −2.5%, 200M at
/// 32K/64K +2/+4.5% (docs/training.md; the 7B cases are a test).
/// </para>
/// </summary>
public static class MemoryPlanner
{
    /// <summary>Bytes per token per unit of (6·hidden + 2·intermediate) in one block's recompute + backward.</summary>
    public const double BlockWorkingBytesPerUnit = 5.2;

    /// <summary>CUDA context, cuBLAS and cuDNN workspaces.</summary>
    public const long RuntimeBytes = 1L << 30;

    /// <summary>Share of device memory a plan may use; the rest is the caching allocator's fragmentation margin.</summary>
    public const double UsableShare = 0.92;

    /// <summary>Memory per GPU as CUDA reports it (cudaMemGetInfo's total).</summary>
    public static readonly IReadOnlyDictionary<GpuType, long> DeviceBytes = new Dictionary<GpuType, long>
    {
        [GpuType.A100] = 85_091_827_712,   // 79.25 GiB
        [GpuType.H100] = 85_017_313_280,   // 79.18 GiB
        [GpuType.H200] = 150_754_820_096,  // 140.4 GiB (143,771 MiB, measured)
    };

    /// <summary>Plans for the experiment's GPU and count; null when it trains on the CPU.</summary>
    public static MemoryChoice? Choose(ExperimentSpec spec, ModelShape shape)
    {
        var resources = spec.Resources;
        if (resources.Gpu == GpuType.Cpu) return null;
        string gpu = SpecModel.EnumName(typeof(GpuType), resources.Gpu);
        int count = resources.GpuCount;
        var stages = count == 1 ? new[] { 0 } : new[] { 2, 3 };
        var placements = spec.Training.Offload switch
        {
            Offload.Gpu => new[] { "gpu" },
            Offload.Cpu => new[] { "cpu" },
            _ => new[] { "gpu", "cpu" },
        };
        var candidates = stages.SelectMany(stage => placements.Select(p => Plan(spec, shape, p, stage))).ToList();
        // Stage 2 first: stage 3 gathers every block's parameters twice per micro-batch, so it is chosen only when no
        // stage-2 plan fits; it needs activation checkpointing (a kept graph would hold its block's gathered parameters).
        bool recompute = spec.Training.ActivationCheckpointing;
        var chosen = candidates.FirstOrDefault(c => c.Fits && (c.ZeroStage < 3 || recompute));
        string note;
        if (chosen is not null)
        {
            note = spec.Training.Offload == Offload.Auto
                ? chosen.Placement == "gpu" ? "auto: the optimizer state fits on the GPU" : "auto: the optimizer state does not fit on the GPU, so it lives in host memory (AdamW on the CPU)"
                : $"offload: {chosen.Placement}, as the experiment says";
            if (chosen.ZeroStage == 3)
                note = $"ZeRO stage 3: whole parameters do not fit on each GPU beside the rest (stage 2 needs at least {Gib(candidates.Where(c => c.ZeroStage == 2).Min(c => c.Total))} per GPU), so each GPU keeps 1/{count} of them and gathers one block at a time; {note}";
        }
        else if (candidates.FirstOrDefault(c => c.Fits) is { } stage3)
        {
            note = $"fits only with ZeRO stage 3 (parameters sharded over the {count} GPUs, {Gib(stage3.Total)} per GPU), which needs activation checkpointing (training.activation_checkpointing: true)";
        }
        else
        {
            var best = candidates.MinBy(c => c.Total)!;
            note = $"does not fit: at least {Gib(best.Total)} per GPU ({best.Placement} placement{(count > 1 ? $", ZeRO stage {best.ZeroStage}" : "")}), the {gpu} allows {Gib(best.Budget)}";
        }
        return new MemoryChoice(gpu, count, chosen, candidates, note);
    }

    /// <summary>One placement (gpu or cpu) at one ZeRO stage.</summary>
    public static MemoryPlan Plan(ExperimentSpec spec, ModelShape shape, string placement, int zeroStage)
    {
        long p = shape.Parameters;
        int n = Math.Max(1, spec.Resources.GpuCount);
        int parameterBytes = spec.Training.Precision == Precision.Bf16 ? 2 : 4;
        long t = spec.Data.Context, mb = spec.Training.MicroBatch, d = shape.HiddenSize, i = shape.IntermediateSize;
        string shard = n > 1 && zeroStage >= 2 ? $" / {n} GPUs" : "";
        var rows = new List<MemoryRow>();
        if (zeroStage >= 3)
        {
            long block = p / Math.Max(1, shape.Layers);
            rows.Add(new("parameters (sharded, 2 blocks gathered)", (parameterBytes * p / n) + (2 * parameterBytes * block), $"{parameterBytes} B x N / {n} + 2 blocks"));
        }
        else
        {
            rows.Add(new("parameters", parameterBytes * p, $"{parameterBytes} B x N ({(parameterBytes == 2 ? "bf16" : "fp32")})"));
        }
        rows.Add(new("gradients (fp32 accumulation)", zeroStage >= 2 ? (4 * p / n) + (200L << 20) : 4 * p, $"4 B x N{shard}{(zeroStage >= 2 ? " + reduce buckets" : "")}"));
        long state = 12 * p / (n > 1 ? n : 1);
        rows.Add(new("master weights + AdamW moments (fp32)", placement == "gpu" ? state : 0,
            placement == "gpu" ? $"12 B x N{(n > 1 ? $" / {n} GPUs" : "")}" : "in host memory"));
        double blockPerToken = BlockWorkingBytesPerUnit * ((6.0 * d) + (2.0 * i));
        long working = (long)(blockPerToken * mb * t);
        if (spec.Training.ActivationCheckpointing)
            rows.Add(new("block inputs kept for recomputation", shape.Layers * mb * t * d * parameterBytes, $"layers x micro_batch x context x hidden x {parameterBytes} B"));
        else
            rows.Add(new("every block's activations (no checkpointing)", shape.Layers * working, "layers x the working set below"));
        const long chunk = 8192;
        long loss = (chunk * shape.VocabSize * 12) + (mb * t * d * 8);
        rows.Add(working >= loss
            ? new("largest working set: one block's recompute + backward", working, $"{BlockWorkingBytesPerUnit} B x (6 x hidden + 2 x intermediate) x micro_batch x context")
            : new("largest working set: LM head + loss chunk", loss, "8,192 positions x vocab x 12 B + micro_batch x context x hidden x 8 B"));
        rows.Add(new("CUDA context and library workspaces", RuntimeBytes, "measured"));
        long device = DeviceBytes.GetValueOrDefault(spec.Resources.Gpu, DeviceBytes[GpuType.A100]);
        return new MemoryPlan(placement, zeroStage, rows, placement == "cpu" ? state : 0, device, (long)(device * UsableShare));
    }

    public static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " GiB";
}
