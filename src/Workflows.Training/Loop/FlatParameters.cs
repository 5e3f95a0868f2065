using TorchSharp;
using TorchSharp.Modules;
using Workflows.Training.Native;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>
/// The model's parameters and their gradients as two flat buffers on the training device, in the order of
/// <c>model.parameters()</c>:
/// <list type="bullet">
/// <item><see cref="Weights"/>, in the parameter type (bf16 for mixed-precision training, fp32 otherwise); every
/// parameter is a view into it, so the model computes from it directly and an optimizer writes it with a few large
/// copies;</item>
/// <item><see cref="Gradients"/>, float32, where the backward pass accumulates each micro-batch's gradients
/// (<see cref="Accumulate"/>) — one owned buffer, not a per-parameter <c>.grad</c> in the parameter type plus an
/// fp32 copy: bf16 accumulation over the dozens of micro-batches of a 4M-token step would lose the small ones.</item>
/// </list>
/// Parameters never get a <c>.grad</c>: the backward pass asks autograd for gradients (<c>autograd.grad</c>) and
/// adds them here, so no gradient outlives the block that produced it.
/// <para>
/// Memory: (parameter bytes + 4) × N on the device. The fp32 master weights and the AdamW moments live in the
/// optimizer (<see cref="MasterAdamW"/>), on the device or in host memory.
/// </para>
/// </summary>
public sealed class FlatParameters : IDisposable
{
    readonly List<(string Name, Parameter Parameter, Slot Slot)> ordered = new();
    // Slot by offset: a parameter is found by where its data lives (TorchSharp may hand out several managed
    // wrappers of one parameter, so object identity cannot be the key).
    readonly Dictionary<long, Slot> slotsByOffset = new();
    nint weightsAddress;

    /// <summary>Where one parameter lives in the flat buffers.</summary>
    public readonly record struct Slot(long Offset, long Count, long[] Shape);

    /// <summary>
    /// Moves <paramref name="model"/>'s parameters into flat buffers of <paramref name="parameterType"/> on
    /// <paramref name="device"/>. <paramref name="beforeCast"/> sees each parameter in float32 first (the
    /// optimizer copies its master weights from there, so they are exact even when the parameters become bf16).
    /// A model built without storage (<see cref="LlamaModel.CreateEmpty"/>) gets uninitialised buffers: the caller fills them.
    /// The model must not be moved to another device or type afterwards (that would replace the views).
    /// </summary>
    /// <param name="capacity">Elements of the weight buffer when more than the parameters need (data-parallel shards are padded to equal sizes).</param>
    /// <param name="fullGradients">Allocate <see cref="Gradients"/> for every parameter; false under sharding, where each rank keeps its shard's (<see cref="GradientShards"/>).</param>
    /// <param name="shard">
    /// ZeRO stage 3: keep only the elements [Start, Start+Size) of the flat space (<see cref="Weights"/> is this rank's
    /// shard, padded to Size) and leave every parameter an empty placeholder until <see cref="ParameterGathering"/>
    /// points it at a gathered buffer. null: every parameter lives in the full buffer.
    /// </param>
    public FlatParameters(nn.Module model, ScalarType parameterType, Device device, Action<Slot, Tensor>? beforeCast = null, long capacity = 0,
        bool fullGradients = true, (long Start, long Size)? shard = null)
    {
        var named = model.named_parameters().ToList();
        if (named.Count == 0) throw new ArgumentException("the model has no parameters", nameof(model));
        long offset = 0;
        foreach (var (name, p) in named)
        {
            var slot = new Slot(offset, p.numel(), p.shape);
            ordered.Add((name, p, slot));
            offset += p.numel();
        }
        Count = offset;
        ParameterType = parameterType;
        Device = device;

        using var noGrad = no_grad();
        bool storageless = ordered[0].Parameter.is_meta;
        if (shard is { } local)
        {
            Sharded = true;
            WeightsStart = local.Start;
            Weights = zeros(local.Size, parameterType, device).DetachFromDisposeScope();
            if (!storageless)
                foreach (var (_, p, slot) in ordered)
                {
                    if (beforeCast is not null && p.dtype != ScalarType.Float32) throw new ArgumentException($"expected float32 parameters before the cast, found {p.dtype}", nameof(model));
                    beforeCast?.Invoke(slot, p);
                    using var scope = NewDisposeScope();
                    long from = Math.Max(slot.Offset, local.Start), to = Math.Min(slot.Offset + slot.Count, local.Start + local.Size);
                    if (from < to) Weights.narrow(0, from - local.Start, to - from).copy_(p.reshape(-1).narrow(0, from - slot.Offset, to - from));
                }
            // Every parameter becomes an empty tensor of the training type and device (set_ keeps type and device,
            // so a gathered view can later take its place).
            Replace(model, ordered, _ => empty(0, parameterType, device));
            Rebuild(model);
            Gradients = empty(0, ScalarType.Float32, device).DetachFromDisposeScope();
            return;
        }
        if (beforeCast is not null && !storageless)
            foreach (var (_, p, slot) in ordered)
            {
                if (p.dtype != ScalarType.Float32) throw new ArgumentException($"expected float32 parameters before the cast, found {p.dtype}", nameof(model));
                beforeCast(slot, p);
            }

        // Parameter by parameter: the old storage of each is released as it moves in, so at 7B the host never holds
        // two full copies and the device holds only the new buffer. Parameters without storage (meta) are not copied.
        Weights = (capacity > Count ? zeros(capacity, parameterType, device) : empty(Count, parameterType, device)).DetachFromDisposeScope();
        if (!storageless)
            foreach (var (_, p, slot) in ordered)
            {
                using var scope = NewDisposeScope();
                Weights.narrow(0, slot.Offset, slot.Count).view(slot.Shape).copy_(p);
            }
        if (!storageless && ordered.All(e => e.Parameter.dtype == parameterType && e.Parameter.device == device))
        {
            foreach (var (_, p, slot) in ordered)
            {
                using var scope = NewDisposeScope();
                p.set_(Weights.narrow(0, slot.Offset, slot.Count).view(slot.Shape));
            }
        }
        else
        {
            Replace(model, ordered, slot => Weights.narrow(0, slot.Offset, slot.Count).view(slot.Shape));
            Rebuild(model);
        }
        weightsAddress = TensorPointers.DataPointer(Weights);
        foreach (var (name, p, slot) in ordered)
        {
            if (OffsetOf(p) != slot.Offset) throw new InvalidOperationException($"parameter {name} does not live in its slot of the flat buffer");
            slotsByOffset[slot.Offset] = slot;
        }
        Gradients = (fullGradients ? zeros(Count, ScalarType.Float32, device) : empty(0, ScalarType.Float32, device)).DetachFromDisposeScope();
    }

    // The parameters after Replace (new Parameter objects), with the slots they had: the shapes are the slots'.
    void Rebuild(nn.Module model)
    {
        var slots = ordered.ToDictionary(e => e.Name, e => e.Slot);
        ordered.Clear();
        foreach (var (name, p) in model.named_parameters()) ordered.Add((name, p, slots[name]));
    }

    // set_ cannot change a tensor's type, and TorchSharp's Module.to(dtype) re-registers submodules under their C#
    // field names (state_dict() then lists every weight twice), so each parameter is replaced by a new Parameter over
    // its slot through its module's settable property of the same name (Linear.weight, Embedding.weight, RmsNorm.weight).
    void Replace(nn.Module model, List<(string Name, Parameter Parameter, Slot Slot)> old, Func<Slot, Tensor> storage)
    {
        var byName = old.ToDictionary(e => e.Name, e => e);
        var replaced = new HashSet<string>();
        foreach (var (moduleName, module) in model.named_modules())
            foreach (var (name, p) in module.named_parameters(recurse: false).ToList())
            {
                // TorchSharp may list a module a second time under its C# field name: only the registered (HF) name counts.
                string full = moduleName.Length == 0 ? name : $"{moduleName}.{name}";
                if (!byName.TryGetValue(full, out var entry) || !replaced.Add(full)) continue;
                var property = module.GetType().GetProperty(name, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance);
                if (property is null || !property.CanWrite || !property.PropertyType.IsAssignableFrom(typeof(Parameter)))
                    throw new NotSupportedException($"cannot give parameter {moduleName}.{name} the type {ParameterType}: {module.GetType().Name} has no settable property \"{name}\"");
                property.SetValue(module, new Parameter(storage(entry.Slot), requires_grad: p.requires_grad));
            }
        var missing = byName.Keys.Where(n => !replaced.Contains(n)).ToList();
        if (missing.Count > 0) throw new InvalidOperationException($"parameters not found in their modules: {string.Join(", ", missing.Take(3))}");
    }

    public long Count { get; }
    public ScalarType ParameterType { get; }
    public Device Device { get; }
    /// <summary>
    /// The parameters in the parameter type: all of them, or under ZeRO stage 3 (<see cref="Sharded"/>) this rank's
    /// elements [<see cref="WeightsStart"/>, <see cref="WeightsStart"/> + its length) of the flat space.
    /// </summary>
    public Tensor Weights { get; }
    /// <summary>The flat-space element <see cref="Weights"/> starts at (0 unless sharded).</summary>
    public long WeightsStart { get; }
    /// <summary>ZeRO stage 3: the parameters are empty except while gathered (<see cref="ParameterGathering"/>).</summary>
    public bool Sharded { get; }
    public Tensor Gradients { get; }
    public IReadOnlyList<(string Name, Parameter Parameter, Slot Slot)> Parameters => ordered;

    /// <summary>The parameters whose names start with <paramref name="prefix"/> (e.g. <c>model.layers.3.</c>), in flat order.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter, Slot Slot)> Named(string prefix) =>
        ordered.Where(e => e.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();

    public Slot SlotOf(Tensor parameter) =>
        slotsByOffset.TryGetValue(OffsetOf(parameter), out var slot) && slot.Count == parameter.numel()
            ? slot : throw new ArgumentException("not a parameter of this model", nameof(parameter));

    long OffsetOf(Tensor parameter)
    {
        long bytes = TensorPointers.DataPointer(parameter) - weightsAddress;
        int size = ParameterType == ScalarType.Float32 ? 4 : 2;
        return bytes >= 0 && bytes % size == 0 ? bytes / size : -1;
    }

    /// <summary>The float32 gradient of <paramref name="parameter"/> (a view; dispose it when done).</summary>
    public Tensor GradientOf(Tensor parameter) => GradientOf(SlotOf(parameter));

    /// <summary>The float32 gradient of the parameter in <paramref name="slot"/> (a view; dispose it when done).</summary>
    public Tensor GradientOf(Slot slot)
    {
        using var flat = Gradients.narrow(0, slot.Offset, slot.Count);
        return flat.view(slot.Shape);
    }

    /// <summary>Adds <paramref name="gradient"/> (any floating type) into <paramref name="parameter"/>'s float32 gradient.</summary>
    public void Accumulate(Tensor parameter, Tensor gradient)
    {
        // In-place ops may hand back a new managed wrapper of the same tensor: the scope disposes it.
        using var scope = NewDisposeScope();
        GradientOf(parameter).add_(gradient);
    }

    public void ZeroGradients()
    {
        using var scope = NewDisposeScope();
        Gradients.zero_();
    }

    public void Dispose()
    {
        // The parameters still view the weight buffer (its storage lives on through them); the gradients are ours,
        // and so is a stage-3 shard, which no parameter views.
        Gradients.Dispose();
        if (Sharded) Weights.Dispose();
    }
}
