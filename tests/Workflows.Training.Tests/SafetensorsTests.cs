using System.Text;
using System.Text.Json;
using Workflows.Training.Model;
using Workflows.Training.Weights;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

public class SafetensorsTests : UsesTempDirectories
{
    static Tensor SomeTokens() { manual_seed(11); return randint(83, [2, 24], dtype: ScalarType.Int64); }

    static Tensor Logits(LlamaModel model, Tensor ids)
    {
        using var _ = no_grad();
        model.eval();
        return model.forward(ids);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Save_then_load_gives_identical_logits(bool tied)
    {
        string dir = NewTempDirectory();
        manual_seed(12);
        using var original = new LlamaModel(TinyModels.Config(vocab: 83, tied: tied));
        var files = HuggingFaceCheckpoint.Save(original, dir);

        files.Should().Equal(HuggingFaceCheckpoint.SingleFileName);
        manual_seed(99); // a different random init, so equality can only come from the file
        using var loaded = HuggingFaceCheckpoint.LoadModel(dir);
        loaded.Config.Should().Be(original.Config);

        var ids = SomeTokens();
        TinyModels.Identical(Logits(loaded, ids), Logits(original, ids)).Should().BeTrue("float32 weights round-trip bit for bit");
    }

    [Fact]
    public void Sharded_save_writes_an_index_that_loading_follows()
    {
        string dir = NewTempDirectory();
        manual_seed(13);
        using var original = new LlamaModel(TinyModels.Config(vocab: 83));
        var files = HuggingFaceCheckpoint.Save(original, dir, maxShardBytes: 40_000);

        files.Count.Should().BeGreaterThan(2);
        files[0].Should().Be($"model-00001-of-{files.Count:D5}.safetensors");
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, HuggingFaceCheckpoint.IndexFileName)));
        var weightMap = index.RootElement.GetProperty("weight_map");
        weightMap.GetProperty("model.layers.1.mlp.down_proj.weight").GetString().Should().BeOneOf(files);
        weightMap.EnumerateObject().Count().Should().Be(original.named_parameters().Count());
        index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64()
            .Should().Be(original.Config.ParameterCount() * 4);

        manual_seed(98);
        using var loaded = HuggingFaceCheckpoint.LoadModel(dir);
        var ids = SomeTokens();
        TinyModels.Identical(Logits(loaded, ids), Logits(original, ids)).Should().BeTrue();
    }

    [Fact]
    public void Files_carry_the_format_metadata_transformers_checks_and_are_8_byte_aligned()
    {
        string dir = NewTempDirectory();
        using var model = new LlamaModel(TinyModels.Config(vocab: 83));
        HuggingFaceCheckpoint.Save(model, dir);

        byte[] bytes = File.ReadAllBytes(Path.Combine(dir, HuggingFaceCheckpoint.SingleFileName));
        long headerLength = BitConverter.ToInt64(bytes, 0);
        (headerLength % 8).Should().Be(0);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)headerLength));
        header.RootElement.GetProperty("__metadata__").GetProperty("format").GetString().Should().Be("pt");
        var embed = header.RootElement.GetProperty("model.embed_tokens.weight");
        embed.GetProperty("dtype").GetString().Should().Be("F32");
        embed.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).Should().Equal(83, 64);
        long end = header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__")
            .Max(p => p.Value.GetProperty("data_offsets")[1].GetInt64());
        (8 + headerLength + end).Should().Be(bytes.Length, "tensor bytes fill the rest of the file exactly");
    }

    [Fact]
    public void A_bf16_checkpoint_loads_into_float32_weights()
    {
        string dir = NewTempDirectory();
        manual_seed(14);
        using var original = new LlamaModel(TinyModels.Config(vocab: 83));
        HuggingFaceCheckpoint.Save(original, dir, dtype: ScalarType.BFloat16);
        using var loaded = HuggingFaceCheckpoint.LoadModel(dir);

        var expected = original.state_dict()["model.layers.0.mlp.up_proj.weight"].to(ScalarType.BFloat16).to(ScalarType.Float32);
        TinyModels.Identical(loaded.state_dict()["model.layers.0.mlp.up_proj.weight"], expected).Should().BeTrue();
        loaded.parameters().Should().OnlyContain(p => p.dtype == ScalarType.Float32);
    }

    [Fact]
    public void Loading_weights_of_another_shape_fails_with_the_tensor_name()
    {
        string dir = NewTempDirectory();
        using var small = new LlamaModel(TinyModels.Config(vocab: 83));
        HuggingFaceCheckpoint.Save(small, dir);
        using var bigger = new LlamaModel(TinyModels.Config(vocab: 84));

        var act = () => HuggingFaceCheckpoint.Load(bigger, dir);
        act.Should().Throw<InvalidDataException>().WithMessage("*model.embed_tokens.weight*");
    }

    [Fact]
    public void A_shard_index_naming_a_file_outside_the_model_folder_is_refused()
    {
        string dir = NewTempDirectory();
        using var model = new LlamaModel(TinyModels.Config(vocab: 83));
        HuggingFaceCheckpoint.Save(model, dir);
        File.WriteAllText(Path.Combine(dir, HuggingFaceCheckpoint.IndexFileName),
            "{\"metadata\":{},\"weight_map\":{\"model.embed_tokens.weight\":\"../../elsewhere/model.safetensors\"}}");

        var act = () => HuggingFaceCheckpoint.Load(model, dir);
        act.Should().Throw<InvalidDataException>().WithMessage("*names shard '../../elsewhere/model.safetensors': shards are file names in the model folder*");
    }
}
