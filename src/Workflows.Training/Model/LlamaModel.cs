using TorchSharp;
using TorchSharp.Modules;
using Workflows.Training.Inference;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workflows.Training.Model;

/// <summary>
/// A LLaMA-architecture causal language model, readable top to bottom (see <see cref="forward"/>). Submodules are
/// registered under HuggingFace's names, so <c>state_dict()</c> keys are exactly those of
/// <c>LlamaForCausalLM</c>: <c>model.embed_tokens.weight</c>, <c>model.layers.N.self_attn.q_proj.weight</c>, …,
/// <c>model.norm.weight</c>, <c>lm_head.weight</c> (absent from saved files when tied, as in HF).
/// <para>
/// Precision follows the parameters, as in HF: a bf16 model (training keeps bf16 parameters, see
/// <c>FlatParameters</c>) computes every projection, attention and the residual stream in bf16, norms in float32
/// internally, the loss's softmax in float32. <see cref="ComputeType"/> = BFloat16 on float32 weights instead casts
/// weights and activations at each matmul (autocast's way; TorchSharp has no autocast), for inference on fp32 weights.
/// </para>
/// <para>
/// Training does not call <see cref="forward"/> with gradients: the trainer runs the blocks one by one, keeping
/// only their inputs, and back-propagates block by block (<c>BlockwiseBackprop</c>); for that it reaches the parts
/// through <see cref="Embedding"/>, <see cref="Layers"/>, <see cref="FinalNorm"/>, <see cref="LmHeadWeight"/> and
/// <see cref="RopeTables"/>.
/// </para>
/// </summary>
public sealed class LlamaModel : nn.Module<Tensor, Tensor>
{
    public LlamaConfig Config { get; }
    public ScalarType ComputeType { get; set; } = ScalarType.Float32;
    /// <summary>
    /// <see cref="Loss"/> without gradients computes the LM head and cross-entropy over this many positions at a
    /// time (see <see cref="ChunkedCrossEntropy"/>) when a batch has more; 0 = all logits at once.
    /// </summary>
    public int LossChunkTokens { get; set; }

    readonly Embedding embedTokens;
    readonly ModuleList<LlamaDecoderLayer> layers;
    List<LlamaDecoderLayer>? layersView;
    readonly RmsNorm norm;
    readonly Linear? lmHead; // null when tied to the embeddings

    readonly Dictionary<(int Length, string Device, ScalarType Type), (Tensor Cos, Tensor Sin)> ropeTables = new();

    /// <param name="device">Where the parameters are created (null: torch's default device, CPU unless changed).</param>
    public LlamaModel(LlamaConfig config, Device? device = null) : base("LlamaModel")
    {
        Config = config.Validated();
        embedTokens = nn.Embedding(config.VocabSize, config.HiddenSize, device: device);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumLayers).Select(_ => new LlamaDecoderLayer(config, device)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device);

        var trunk = new ModuleContainer("model");
        trunk.Add("embed_tokens", embedTokens);
        trunk.Add("layers", layers);
        trunk.Add("norm", norm);
        register_module("model", trunk);
        if (!config.TieWordEmbeddings)
        {
            lmHead = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, device: device);
            register_module("lm_head", lmHead);
        }
        InitializeWeights();
    }

    /// <summary>
    /// Builds the model with its parameters created and initialised on <paramref name="device"/> (on a GPU that is
    /// seconds for 7B, where the CPU spends minutes drawing 6.7 billion random numbers twice).
    /// </summary>
    public static LlamaModel Create(LlamaConfig config, Device device) => new(config, device);

    /// <summary>
    /// Builds the model's structure without storage (on the meta device): no memory, no initialisation. The trainer
    /// then places every parameter in its flat buffers on the training device and fills them there (HF's init, or a
    /// base model's weights), so a 7B model never exists twice and no freed block fragments the GPU's memory.
    /// </summary>
    public static LlamaModel CreateEmpty(LlamaConfig config) => new(config, META);

    /// <summary>True when the parameters have no storage yet (built by <see cref="CreateEmpty"/>).</summary>
    public bool IsEmpty => embedTokens.weight!.is_meta;

    /// <summary>The LM head weight: its own matrix, or the embedding matrix when tied.</summary>
    public Parameter LmHeadWeight => lmHead?.weight ?? embedTokens.weight!;
    public Embedding Embedding => embedTokens;
    public IReadOnlyList<LlamaDecoderLayer> Layers => layersView ??= layers.ToList();
    public RmsNorm FinalNorm => norm;

    /// <summary>HF's init: every Linear and Embedding weight ~ N(0, initializer_range²), norms at 1.</summary>
    public void InitializeWeights()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (name, p) in named_parameters()) Initialize(name, p, Config.InitializerRange);
    }

    /// <summary>HF's init of one parameter, by its name (in place).</summary>
    public static void Initialize(string name, Tensor parameter, double initializerRange)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        if (name.EndsWith("norm.weight", StringComparison.Ordinal)) parameter.fill_(1.0);
        else parameter.normal_(0, initializerRange);
    }

    /// <summary>Token ids [batch, T] → logits [batch, T, vocab] (float32).</summary>
    public override Tensor forward(Tensor inputIds) => Logits(Hidden(inputIds));

    /// <summary>Token ids [batch, T] → the final-norm output [batch, T, hidden], the LM head's input.</summary>
    public Tensor Hidden(Tensor inputIds)
    {
        int length = (int)inputIds.shape[1];
        var (cos, sin) = RopeTables(length, inputIds.device);   // [T, head_dim] each

        Tensor hidden = embedTokens.forward(inputIds);           // [B, T, d]
        foreach (var layer in layers)
            hidden = layer.Forward(hidden, cos, sin, ComputeType);
        return norm.forward(hidden);
    }

    /// <summary>LM head: final-norm output [..., hidden] → logits [..., vocab] in float32.</summary>
    public Tensor Logits(Tensor hidden) => Projection.Apply(hidden, LmHeadWeight, ComputeType).to(ScalarType.Float32);

    /// <summary>
    /// Mean next-token cross-entropy of <paramref name="targets"/> [batch, T] given <paramref name="inputIds"/>.
    /// Without gradients and with <see cref="LossChunkTokens"/> &gt; 0 and more positions than that, the logits are
    /// never materialised for the whole batch (see <see cref="ChunkedCrossEntropy"/>). With gradients this is the
    /// plain autograd path (all logits at once): the reference the trainer's block-by-block backward is tested against.
    /// </summary>
    public Tensor Loss(Tensor inputIds, Tensor targets)
    {
        var hidden = Hidden(inputIds);
        var flatTargets = targets.reshape(-1);
        if (!is_grad_enabled() && LossChunkTokens > 0 && flatTargets.shape[0] > LossChunkTokens)
            return ChunkedCrossEntropy.Loss(hidden.view(-1, Config.HiddenSize), LmHeadWeight, flatTargets, ComputeType, LossChunkTokens);
        return F.cross_entropy(Logits(hidden).view(-1, Config.VocabSize), flatTargets);
    }

    /// <summary>
    /// Cached inference: runs <paramref name="inputIds"/> [batch, n] as positions start..start+n-1 of sequences
    /// whose earlier positions are in <paramref name="cache"/>, writes their keys and values there, and returns the
    /// final-norm output [batch, n, hidden]. RoPE uses the frequencies of a sequence of
    /// <paramref name="ropeScalingLength"/> tokens (it matters for dynamic NTK only; see LlamaGenerator).
    /// Queries attend to every cached key and causally within the chunk; no [T, T] matrix is ever built: the
    /// first chunk (start = 0) is plain causal attention, a later chunk passes a boolean mask of [n, start+n].
    /// </summary>
    public Tensor HiddenWithCache(Tensor inputIds, KvCache cache, int start, int ropeScalingLength)
    {
        if (cache.Layers.Count != layers.Count) throw new ArgumentException("the cache was made for another model", nameof(cache));
        long n = inputIds.shape[1];
        var device = inputIds.device;
        var (cos, sin) = RotaryEmbedding.Tables(Config, ropeScalingLength, start, n, device, ComputeType);
        Tensor? mask = null;
        if (start > 0 && n > 1)
        {
            // Query i (position start+i) may see key j iff j <= start+i. With grouped heads folded into the query
            // axis (see LlamaAttention), the rows repeat once per query head of a KV head.
            mask = arange(start + n, device: device).unsqueeze(0) <= arange(start, start + n, device: device).unsqueeze(1);
            int groups = Config.NumHeads / Config.NumKeyValueHeads;
            if (groups > 1) mask = mask.repeat(groups, 1);
        }
        var step = new CachedStep(start, mask);

        Tensor hidden = embedTokens.forward(inputIds);
        for (int i = 0; i < layers.Count; i++)
            hidden = layers[i].Forward(hidden, cos, sin, ComputeType, cache.Layers[i], step);
        return norm.forward(hidden);
    }

    /// <summary>RoPE cos/sin tables [length, head_dim] for positions 0..length-1, in the compute type; cached per length (dynamic NTK changes the base with it) and owned by the model.</summary>
    public (Tensor Cos, Tensor Sin) RopeTables(int length, Device device)
    {
        var key = (length, device.ToString(), ComputeType);
        if (!ropeTables.TryGetValue(key, out var tables))
        {
            tables = RotaryEmbedding.Tables(Config, length, device, ComputeType);
            tables.Cos.DetachFromDisposeScope();
            tables.Sin.DetachFromDisposeScope();
            ropeTables[key] = tables;
        }
        return tables;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var (cos, sin) in ropeTables.Values) { cos.Dispose(); sin.Dispose(); }
            ropeTables.Clear();
        }
        base.Dispose(disposing);
    }
}

/// <summary>One transformer block: x + attn(norm(x)), then + mlp(norm(x)) (pre-norm, as in LLaMA).</summary>
public sealed class LlamaDecoderLayer : nn.Module
{
    readonly RmsNorm inputLayernorm;
    readonly LlamaAttention selfAttn;
    readonly RmsNorm postAttentionLayernorm;
    readonly LlamaMlp mlp;

    public LlamaDecoderLayer(LlamaConfig config, Device? device = null) : base("LlamaDecoderLayer")
    {
        inputLayernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device);
        selfAttn = new LlamaAttention(config, device);
        postAttentionLayernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps, device);
        mlp = new LlamaMlp(config, device);
        register_module("self_attn", selfAttn);
        register_module("mlp", mlp);
        register_module("input_layernorm", inputLayernorm);
        register_module("post_attention_layernorm", postAttentionLayernorm);
    }

    /// <summary>[B, T, d] → [B, T, d].</summary>
    public Tensor Forward(Tensor hidden, Tensor cos, Tensor sin, ScalarType compute, LayerKvCache? cache = null, CachedStep? step = null)
    {
        hidden = hidden + selfAttn.Forward(inputLayernorm.forward(hidden), cos, sin, compute, cache, step);
        hidden = hidden + mlp.Forward(postAttentionLayernorm.forward(hidden), compute);
        return hidden;
    }
}

/// <summary>
/// Grouped-query attention: <c>num_heads</c> query heads share <c>num_key_value_heads</c> key/value heads
/// (each K/V head serves num_heads/num_kv_heads consecutive query heads, as HF's repeat_kv). RoPE rotates q and
/// k; <c>scaled_dot_product_attention(is_causal)</c> picks the fused (flash / memory-efficient) kernel on GPU.
/// </summary>
public sealed class LlamaAttention : nn.Module
{
    readonly int heads, kvHeads, headDim;
    readonly Linear qProj, kProj, vProj, oProj;

    public LlamaAttention(LlamaConfig config, Device? device = null) : base("LlamaAttention")
    {
        heads = config.NumHeads;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        qProj = nn.Linear(config.HiddenSize, heads * headDim, hasBias: false, device: device);
        kProj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: false, device: device);
        vProj = nn.Linear(config.HiddenSize, kvHeads * headDim, hasBias: false, device: device);
        oProj = nn.Linear(heads * headDim, config.HiddenSize, hasBias: false, device: device);
        register_module("q_proj", qProj);
        register_module("k_proj", kProj);
        register_module("v_proj", vProj);
        register_module("o_proj", oProj);
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, ScalarType compute, LayerKvCache? cache = null, CachedStep? step = null)
    {
        long batch = x.shape[0], length = x.shape[1];
        // [B, T, d] → [B, T, count·head_dim] → [B, count, T, head_dim]
        Tensor Heads(Linear proj, int count) =>
            Projection.Apply(x, proj.weight!, compute).view(batch, length, count, headDim).transpose(1, 2);

        var q = RotaryEmbedding.Apply(Heads(qProj, heads), cos, sin);
        var k = RotaryEmbedding.Apply(Heads(kProj, kvHeads), cos, sin);
        var v = Heads(vProj, kvHeads);
        long start = step?.Start ?? 0;
        if (cache is not null) cache.Write(k, v, start);

        Tensor attended;
        if (start == 0)
        {
            // Training, or the first chunk of a prefill: the chunk sees only itself, causally (flash on GPU).
            attended = F.scaled_dot_product_attention(q, Repeat(k), Repeat(v), null, 0.0, true);
        }
        else
        {
            // A later chunk or a decoded token: attend to all cached keys (this chunk's included). The K/V heads
            // are not repeated (that would copy the whole cache per layer per token); instead the query heads
            // that share a K/V head are folded into the query axis: [B, kv, groups·n, D]. A single token needs no
            // mask; a chunk needs "key position <= query position" (CachedStep.Mask, already repeated per group).
            var keys = cache!.Keys(start + length);
            var values = cache.Values(start + length);
            int groups = heads / kvHeads;
            var folded = groups == 1 ? q : q.reshape(batch, kvHeads, groups * length, headDim);
            var mask = length == 1 ? null : step!.Mask;
            attended = F.scaled_dot_product_attention(folded, keys, values, mask, 0.0, false);
            if (groups > 1) attended = attended.view(batch, heads, length, headDim);
        }
        var merged = attended.transpose(1, 2).reshape(batch, length, heads * headDim);   // [B, heads, T, D] → [B, T, heads·D]
        return Projection.Apply(merged, oProj.weight!, compute);
    }

    // HF's repeat_kv: each K/V head serves heads/kvHeads consecutive query heads.
    Tensor Repeat(Tensor kv) => kvHeads == heads ? kv : kv.repeat_interleave(heads / kvHeads, dim: 1);
}

/// <summary>Where a cached forward pass is: the chunk's first position and, for a chunk after the first, its attention mask.</summary>
public sealed record CachedStep(long Start, Tensor? Mask);

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) · up(x)).</summary>
public sealed class LlamaMlp : nn.Module
{
    readonly Linear gateProj, upProj, downProj;

    public LlamaMlp(LlamaConfig config, Device? device = null) : base("LlamaMlp")
    {
        gateProj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false, device: device);
        upProj = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: false, device: device);
        downProj = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: false, device: device);
        register_module("gate_proj", gateProj);
        register_module("up_proj", upProj);
        register_module("down_proj", downProj);
    }

    public Tensor Forward(Tensor x, ScalarType compute)
    {
        var gate = F.silu(Projection.Apply(x, gateProj.weight!, compute));   // [B, T, intermediate]
        var up = Projection.Apply(x, upProj.weight!, compute);               // [B, T, intermediate]
        return Projection.Apply(gate * up, downProj.weight!, compute);
    }
}

/// <summary>
/// RMSNorm as HF computes it: x·rsqrt(mean(x²)+ε) in float32, cast back to the input's type, then scaled by the
/// learned weight (so a bf16 model stays bf16 and a float32 one float32).
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    Parameter weightParameter;

    // Held for the module's lifetime: an implicit double→Scalar temporary can be finalised by the GC while the native
    // call that uses it is still running (seen in Release builds as a failed c10 Scalar check), so keep one alive here.
    readonly Scalar epsScalar;

    public RmsNorm(int size, double eps, Device? device = null) : base("RmsNorm")
    {
        epsScalar = eps.ToScalar();
        weightParameter = nn.Parameter(ones(size, device: device));
        register_parameter("weight", weightParameter);
    }

    /// <summary>The learned scale (settable like Linear.weight, so the trainer can move it into its flat buffer).</summary>
    public Parameter weight
    {
        get => weightParameter;
        set
        {
            if (value.Handle == weightParameter.Handle) return;
            weightParameter.Dispose();
            weightParameter = value;
            ConditionallyRegisterParameter("weight", value);
        }
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normalized = (x32 * (x32.square().mean([-1L], keepdim: true) + epsScalar).rsqrt()).to(x.dtype);
        return (weightParameter * normalized).MoveToOuterDisposeScope();
    }
}

/// <summary>A bias-free linear map computed in the requested type (the manual equivalent of autocast).</summary>
static class Projection
{
    public static Tensor Apply(Tensor x, Tensor weight, ScalarType compute) =>
        compute == x.dtype && compute == weight.dtype
            ? F.linear(x, weight)
            : F.linear(x.to(compute), weight.to(compute));
}

/// <summary>A module that only groups named children (HF's <c>model.</c> prefix); it has no forward of its own.</summary>
sealed class ModuleContainer : nn.Module
{
    public ModuleContainer(string name) : base(name) { }
    public void Add(string name, nn.Module child) => register_module(name, child);
}
