namespace Workflows.Experiments.Spec;

/// <summary>Shape of a LLaMA-architecture model: what the planner needs (parameter count) and what training builds.</summary>
public sealed record ModelShape(
    string Id,
    int Layers,
    int HiddenSize,
    int Heads,
    int KvHeads,
    int IntermediateSize,
    int VocabSize,
    bool TieEmbeddings,
    long MaxPositionEmbeddings)
{
    public int HeadDim => HiddenSize / Heads;

    /// <summary>Trainable parameters: embeddings, attention (GQA), SwiGLU MLP, two RMSNorms per block, final norm, head.</summary>
    public long Parameters
    {
        get
        {
            long d = HiddenSize;
            long kv = (long)KvHeads * HeadDim;
            var attention = (d * d) + (2 * d * kv) + (d * d);
            var mlp = 3 * d * IntermediateSize;
            var block = attention + mlp + (2 * d);
            var embeddings = (long)VocabSize * d;
            return embeddings + (Layers * block) + d + (TieEmbeddings ? 0 : embeddings);
        }
    }

    /// <summary>Parameters outside the embedding table (the "N" of 6·N·D when the embedding lookup costs nothing).</summary>
    public long NonEmbeddingParameters => Parameters - ((long)VocabSize * HiddenSize);

    public ModelShape With(ArchitectureSpec? a) => a is null
        ? this
        : this with
        {
            Layers = a.Layers ?? Layers,
            HiddenSize = a.HiddenSize ?? HiddenSize,
            Heads = a.Heads ?? Heads,
            KvHeads = a.KvHeads ?? a.Heads ?? KvHeads,
            IntermediateSize = a.IntermediateSize ?? IntermediateSize,
            VocabSize = a.VocabSize ?? VocabSize,
            TieEmbeddings = a.TieEmbeddings ?? TieEmbeddings,
            MaxPositionEmbeddings = a.MaxPositionEmbeddings ?? MaxPositionEmbeddings,
        };
}

/// <summary>Base models wf knows by id. Any other base is a path to a HuggingFace model folder (read at run time).</summary>
public static class ModelCatalog
{
    public static readonly IReadOnlyDictionary<string, ModelShape> Known = new Dictionary<string, ModelShape>(StringComparer.Ordinal)
    {
        // HuggingFace meta-llama/Llama-2-7b-hf and -13b-hf config.json values.
        ["llama-2-7b"] = new("llama-2-7b", 32, 4096, 32, 32, 11008, 32000, false, 4096),
        ["llama-2-13b"] = new("llama-2-13b", 40, 5120, 40, 40, 13824, 32000, false, 4096),
        // A randomly initialised model small enough to train on a laptop CPU in minutes (smoke runs, tests).
        ["tiny"] = new("tiny", 2, 128, 4, 4, 352, 50257, true, 4096),
    };

    public static bool IsPath(string modelBase) =>
        modelBase.Contains('/', StringComparison.Ordinal) || modelBase.StartsWith('.') || modelBase.StartsWith('~');

    public static ModelShape? Resolve(ModelSpec model) =>
        Known.TryGetValue(model.Base, out var shape) ? shape.With(model.Architecture) : null;
}
