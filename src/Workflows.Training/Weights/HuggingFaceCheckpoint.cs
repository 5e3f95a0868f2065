using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.PyBridge;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Validation;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Weights;

/// <summary>
/// Model weights in HuggingFace's on-disk layout: <c>config.json</c> plus either one <c>model.safetensors</c> or
/// shards <c>model-0000k-of-0000n.safetensors</c> with <c>model.safetensors.index.json</c>
/// (<c>{"metadata":{"total_size":…},"weight_map":{name: shard}}</c>), tensor names as in
/// <c>LlamaForCausalLM.state_dict()</c>. Such a folder loads with <c>LlamaForCausalLM.from_pretrained</c>, and
/// LLaMA-2 checkpoints from the hub load here.
/// <para>
/// Reading uses TorchSharp.PyBridge's safetensors reader. Writing is done here because PyBridge 1.4.4 writes no
/// <c>__metadata__</c> entry, and transformers (4.35, the paper's version) rejects a safetensors file whose
/// metadata lacks <c>"format": "pt"</c>.
/// </para>
/// </summary>
public static class HuggingFaceCheckpoint
{
    public const string IndexFileName = "model.safetensors.index.json";
    public const string SingleFileName = "model.safetensors";
    public const long DefaultMaxShardBytes = 5L * 1024 * 1024 * 1024; // transformers' default max_shard_size "5GB"

    /// <summary>
    /// Writes <paramref name="model"/>'s weights (converted to <paramref name="dtype"/>, default float32) and its
    /// config.json into <paramref name="directory"/>. Shards are cut when the next tensor would pass
    /// <paramref name="maxShardBytes"/> (a tensor larger than that gets a shard of its own).
    /// </summary>
    public static IReadOnlyList<string> Save(LlamaModel model, string directory, long maxShardBytes = DefaultMaxShardBytes, ScalarType dtype = ScalarType.Float32) =>
        Save(model.Config, WeightsToSave(model).Select(e => new WeightSource(e.Name, e.Tensor.shape, () => e.Tensor.detach())).ToList(),
            directory, maxShardBytes, dtype);

    /// <summary>A weight to save: its HF name, its shape, and how to read it (a tensor the writer disposes after use).</summary>
    public sealed record WeightSource(string Name, long[] Shape, Func<Tensor> Read);

    /// <summary>
    /// Writes weights read one at a time from <paramref name="weights"/> (so a 7B model never needs a second full
    /// copy in memory), converted to <paramref name="dtype"/>, and <paramref name="config"/>'s config.json.
    /// </summary>
    public static IReadOnlyList<string> Save(LlamaConfig config, IReadOnlyList<WeightSource> weights, string directory,
        long maxShardBytes = DefaultMaxShardBytes, ScalarType dtype = ScalarType.Float32)
    {
        Directory.CreateDirectory(directory);
        var shards = new List<List<WeightSource>> { new() };
        long shardBytes = 0;
        foreach (var w in weights)
        {
            long bytes = w.Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
            if (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes) { shards.Add(new()); shardBytes = 0; }
            shards[^1].Add(w);
            shardBytes += bytes;
        }

        var files = new List<string>();
        var weightMap = new JsonObject();
        long totalSize = 0;
        using var noGrad = no_grad();
        for (int i = 0; i < shards.Count; i++)
        {
            string file = shards.Count == 1 ? SingleFileName : $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            totalSize += WriteSafetensors(Path.Combine(directory, file), shards[i], dtype);
            foreach (var w in shards[i]) weightMap[w.Name] = file;
            files.Add(file);
        }
        if (shards.Count > 1)
        {
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = totalSize }, ["weight_map"] = weightMap };
            File.WriteAllText(Path.Combine(directory, IndexFileName), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToHuggingFaceJson());
        return files;
    }

    /// <summary>
    /// Reads every weight stored in <paramref name="directory"/> and hands it, by HF name, to
    /// <paramref name="receive"/> (the tensor is disposed afterwards). Names must match <paramref name="expected"/>
    /// (name → shape) exactly: unknown names, wrong shapes and missing weights are errors; RoPE <c>inv_freq</c>
    /// buffers that older HF checkpoints carry are ignored.
    /// </summary>
    public static void Read(string directory, IReadOnlyDictionary<string, long[]> expected, Action<string, Tensor> receive)
    {
        var seen = new HashSet<string>();
        using var noGrad = no_grad();
        foreach (string shard in ShardFiles(directory))
        {
            var stateDict = Safetensors.LoadStateDict(PathPolicy.Current.RequireFile(Path.Combine(directory, shard)));
            try
            {
                foreach (var (name, loaded) in stateDict)
                {
                    if (name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)) continue;
                    if (!expected.TryGetValue(name, out var shape))
                        throw new InvalidDataException($"{shard}: unexpected tensor \"{name}\"");
                    if (!shape.SequenceEqual(loaded.shape))
                        throw new InvalidDataException($"{shard}: \"{name}\" has shape [{string.Join(",", loaded.shape)}], the model expects [{string.Join(",", shape)}]");
                    receive(name, loaded);
                    seen.Add(name);
                }
            }
            finally
            {
                foreach (var t in stateDict.Values) t.Dispose();
            }
        }
        var missing = expected.Keys.Where(k => !seen.Contains(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{directory}: missing {missing.Count} weights, e.g. {string.Join(", ", missing.Take(3))}");
    }

    /// <summary>The HF names and shapes of <paramref name="model"/>'s saved weights (lm_head left out when tied).</summary>
    public static Dictionary<string, long[]> SavedShapes(LlamaModel model) =>
        WeightsToSave(model).ToDictionary(e => e.Name, e => e.Tensor.shape);

    /// <summary>Reads the config.json of a HuggingFace model folder (through the path policy, like every weight file read here).</summary>
    public static LlamaConfig ReadConfig(string directory) =>
        LlamaConfig.FromHuggingFaceJson(System.Text.Encoding.UTF8.GetString(
            PathPolicy.Current.ReadAllBytes(Path.Combine(directory, "config.json"), PathRules.MaxModelConfigBytes)));

    /// <summary>
    /// Copies the weights stored in <paramref name="directory"/> (sharded with an index, or one file) into
    /// <paramref name="model"/>, converting dtypes (e.g. a bf16 LLaMA-2 checkpoint into float32 weights). Every
    /// model weight must be present (lm_head only when untied); RoPE <c>inv_freq</c> buffers that older HF
    /// checkpoints carry are ignored (they are recomputed); any other unknown name is an error.
    /// </summary>
    public static void Load(LlamaModel model, string directory)
    {
        var targets = WeightsToSave(model).ToDictionary(e => e.Name, e => e.Tensor);
        Read(directory, targets.ToDictionary(e => e.Key, e => e.Value.shape), (name, loaded) => targets[name].copy_(loaded));
    }

    /// <summary>Builds a model from a HuggingFace folder: its config.json, then its weights.</summary>
    public static LlamaModel LoadModel(string directory)
    {
        var model = new LlamaModel(ReadConfig(directory));
        Load(model, directory);
        return model;
    }

    static IEnumerable<string> ShardFiles(string directory)
    {
        string indexPath = Path.Combine(directory, IndexFileName);
        if (File.Exists(indexPath))
        {
            var index = JsonNode.Parse(PathPolicy.Current.ReadAllBytes(indexPath, PathRules.MaxModelConfigBytes * 64))!.AsObject();
            var weightMap = index["weight_map"]?.AsObject() ?? throw new InvalidDataException($"{indexPath} has no weight_map");
            var shards = weightMap.Select(kv => kv.Value!.GetValue<string>()).Distinct().Order(StringComparer.Ordinal).ToList();
            // Shards sit beside the index: a name with a folder in it ("../x") would read outside the model folder.
            return shards.FirstOrDefault(s => s.Length == 0 || s != Path.GetFileName(s) || s is "." or "..") is { } bad
                ? throw new InvalidDataException($"{IndexFileName} names shard {PathPolicy.Show(bad)}: shards are file names in the model folder")
                : shards;
        }
        if (File.Exists(Path.Combine(directory, SingleFileName))) return [SingleFileName];
        throw new FileNotFoundException($"{directory} has neither {IndexFileName} nor {SingleFileName}");
    }

    // HF does not store lm_head.weight when it is tied to the embeddings.
    static IEnumerable<(string Name, Tensor Tensor)> WeightsToSave(LlamaModel model) =>
        model.named_parameters()
            .Where(p => !(model.Config.TieWordEmbeddings && p.name == "lm_head.weight"))
            .Select(p => (p.name, (Tensor)p.parameter));

    /// <summary>
    /// One safetensors file: u64 little-endian header length, the JSON header (names → dtype, shape,
    /// data_offsets; plus <c>__metadata__ {"format":"pt"}</c>) padded with spaces to 8 bytes, then the raw
    /// little-endian tensor bytes in header order. Returns the number of tensor bytes written.
    /// </summary>
    static long WriteSafetensors(string path, IReadOnlyList<WeightSource> weights, ScalarType dtype)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var w in weights)
        {
            long length = w.Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
            header[w.Name] = new JsonObject
            {
                ["dtype"] = SafetensorsDType(dtype),
                ["shape"] = new JsonArray(w.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + length),
            };
            offset += length;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;

        string temp = path + ".partial";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            var length = new byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var w in weights)
            {
                using var read = w.Read();
                using var converted = read.to(dtype, CPU).contiguous();
                if (!converted.shape.SequenceEqual(w.Shape))
                    throw new InvalidOperationException($"\"{w.Name}\" was read with shape [{string.Join(",", converted.shape)}], declared [{string.Join(",", w.Shape)}]");
                stream.Write(converted.bytes);
            }
        }
        File.Move(temp, path, overwrite: true);
        return offset;
    }

    static string SafetensorsDType(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float16 => "F16",
        ScalarType.Float64 => "F64",
        _ => throw new NotSupportedException($"weights of type {t} are not saved"),
    };

    static long ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 => 8,
        ScalarType.Float32 => 4,
        _ => 2,
    };
}
