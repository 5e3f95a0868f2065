using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workflows.Training.Model;

/// <summary>How RoPE positions are stretched to reach past the length a model was pretrained on.</summary>
public enum RopeScalingKind { None, Linear, DynamicNtk, Yarn }

/// <summary>
/// RoPE scaling as in HuggingFace's <c>rope_scaling</c>. <see cref="OriginalMaxPositions"/> is the pretraining
/// length the scaling is relative to (HF: <c>original_max_position_embeddings</c>, else
/// <c>max_position_embeddings</c>). <see cref="BetaFast"/>/<see cref="BetaSlow"/>/<see cref="AttentionFactor"/>
/// are YaRN's; null means the YaRN defaults (32, 1, 0.1·ln(factor)+1).
/// </summary>
public sealed record RopeScaling(
    RopeScalingKind Kind,
    double Factor = 1.0,
    int? OriginalMaxPositions = null,
    double? BetaFast = null,
    double? BetaSlow = null,
    double? AttentionFactor = null)
{
    public static RopeScaling None { get; } = new(RopeScalingKind.None);
}

/// <summary>
/// The shape of a LLaMA-architecture decoder (field names follow HuggingFace's <c>LlamaConfig</c>).
/// </summary>
public sealed record LlamaConfig(
    int VocabSize,
    int HiddenSize,
    int IntermediateSize,
    int NumLayers,
    int NumHeads,
    int NumKeyValueHeads,
    int MaxPositionEmbeddings,
    double RmsNormEps = 1e-5,
    double RopeTheta = 10_000,
    RopeScaling? Rope = null,
    bool TieWordEmbeddings = false,
    double InitializerRange = 0.02)
{
    public RopeScaling RopeScaling => Rope ?? RopeScaling.None;
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>LLaMA-2 7B as published (HF <c>meta-llama/Llama-2-7b-hf</c> config.json).</summary>
    public static LlamaConfig Llama2Shape7B { get; } = new(32000, 4096, 11008, 32, 32, 32, 4096, 1e-5);

    /// <summary>LLaMA-2 13B as published (HF <c>meta-llama/Llama-2-13b-hf</c> config.json).</summary>
    public static LlamaConfig Llama2Shape13B { get; } = new(32000, 5120, 13824, 40, 40, 40, 4096, 1e-5);

    /// <summary>Throws when the shape cannot work (so a typo fails before any memory is allocated).</summary>
    public LlamaConfig Validated()
    {
        if (HiddenSize % NumHeads != 0) throw new ArgumentException($"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumHeads}");
        if (NumHeads % NumKeyValueHeads != 0) throw new ArgumentException($"num_attention_heads {NumHeads} is not divisible by num_key_value_heads {NumKeyValueHeads}");
        if (HeadDim % 2 != 0) throw new ArgumentException($"head_dim {HeadDim} must be even for RoPE");
        if (VocabSize <= 0 || NumLayers <= 0 || IntermediateSize <= 0) throw new ArgumentException("vocab_size, num_hidden_layers and intermediate_size must be positive");
        return this;
    }

    /// <summary>Parameter count (embeddings and LM head included; the head counted once when tied).</summary>
    public long ParameterCount()
    {
        long d = HiddenSize, kv = (long)NumKeyValueHeads * HeadDim;
        long perLayer = d * d * 2 + d * kv * 2 + 3L * d * IntermediateSize + 2 * d;
        return VocabSize * d * (TieWordEmbeddings ? 1 : 2) + NumLayers * perLayer + d;
    }

    /// <summary>Reads a HuggingFace LLaMA <c>config.json</c> (the keys transformers writes; unknown keys are ignored).</summary>
    public static LlamaConfig FromHuggingFaceJson(string json)
    {
        var o = JsonNode.Parse(json)?.AsObject() ?? throw new JsonException("config.json is not a JSON object");
        int Int(string key, int? fallback = null) =>
            o[key]?.GetValue<int>() ?? fallback ?? throw new JsonException($"config.json lacks \"{key}\"");
        double Dbl(JsonNode? node, double fallback) => node is null ? fallback : node.GetValue<double>();

        int heads = Int("num_attention_heads");
        return new LlamaConfig(
            VocabSize: Int("vocab_size"),
            HiddenSize: Int("hidden_size"),
            IntermediateSize: Int("intermediate_size"),
            NumLayers: Int("num_hidden_layers"),
            NumHeads: heads,
            NumKeyValueHeads: Int("num_key_value_heads", heads),
            MaxPositionEmbeddings: Int("max_position_embeddings"),
            RmsNormEps: Dbl(o["rms_norm_eps"], 1e-6),
            RopeTheta: Dbl(o["rope_theta"], 10_000),
            Rope: ParseRopeScaling(o["rope_scaling"] as JsonObject),
            TieWordEmbeddings: o["tie_word_embeddings"]?.GetValue<bool>() ?? false,
            InitializerRange: Dbl(o["initializer_range"], 0.02)).Validated();
    }

    static RopeScaling? ParseRopeScaling(JsonObject? s)
    {
        if (s is null) return null;
        // transformers < 4.45 wrote "type", later versions "rope_type".
        string type = (s["rope_type"] ?? s["type"])?.GetValue<string>() ?? "default";
        var kind = type switch
        {
            "default" => (RopeScalingKind?)null,
            "linear" => RopeScalingKind.Linear,
            "dynamic" => RopeScalingKind.DynamicNtk,
            "yarn" => RopeScalingKind.Yarn,
            _ => throw new JsonException($"rope_scaling type \"{type}\" is not supported (default, linear, dynamic, yarn)"),
        };
        if (kind is not RopeScalingKind k) return null;
        double? D(string key) => s[key]?.GetValue<double>();
        return new RopeScaling(k, D("factor") ?? 1.0, s["original_max_position_embeddings"]?.GetValue<int>(),
            D("beta_fast"), D("beta_slow"), D("attention_factor"));
    }

    /// <summary>Writes the config.json HuggingFace transformers reads for this shape.</summary>
    public string ToHuggingFaceJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumLayers,
            ["num_attention_heads"] = NumHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["hidden_act"] = "silu",
            ["initializer_range"] = InitializerRange,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = false,
            ["torch_dtype"] = "float32",
        };
        var r = RopeScaling;
        if (r.Kind != RopeScalingKind.None)
        {
            var s = new JsonObject
            {
                ["rope_type"] = r.Kind switch { RopeScalingKind.Linear => "linear", RopeScalingKind.DynamicNtk => "dynamic", _ => "yarn" },
                ["factor"] = r.Factor,
            };
            if (r.OriginalMaxPositions is int omp) s["original_max_position_embeddings"] = omp;
            if (r.BetaFast is double bf) s["beta_fast"] = bf;
            if (r.BetaSlow is double bs) s["beta_slow"] = bs;
            if (r.AttentionFactor is double af) s["attention_factor"] = af;
            o["rope_scaling"] = s;
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
