using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

public class ModelTests
{
    static Tensor Tokens(int vocab, int batch, int length, int seed)
    {
        manual_seed(seed);
        return randint(vocab, [batch, length], dtype: ScalarType.Int64);
    }

    [Fact]
    public async Task Building_a_storage_less_model_leaves_tensors_other_threads_create_meanwhile_on_the_default_device()
    {
        // Building on the meta device used to switch torch's process-wide default device for the duration: a tensor
        // another thread created meanwhile (a job's evaluation beside a training job in one process) had no storage.
        using var stop = new CancellationTokenSource();
        var builder = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var model = LlamaModel.CreateEmpty(TinyModels.Config(vocab: 97));
                model.IsEmpty.Should().BeTrue();
            }
        });
        try
        {
            for (int i = 0; i < 2_000 && !builder.IsCompleted; i++)
            {
                using var t = ones(4);
                t.is_meta.Should().BeFalse($"tensor {i} was created while another thread built a model without storage");
            }
        }
        finally
        {
            await stop.CancelAsync();
            await builder;
        }
    }

    [Fact]
    public void Logits_at_a_position_do_not_depend_on_later_tokens()
    {
        manual_seed(1);
        using var model = new LlamaModel(TinyModels.Config(vocab: 97));
        model.eval();
        var ids = Tokens(97, 2, 32, seed: 2);
        var changed = ids.clone();
        changed[.., 20] = (ids[.., 20] + 1) % 97;

        using var _ = no_grad();
        var a = model.forward(ids);
        var b = model.forward(changed);
        a.shape.Should().Equal(2, 32, 97);
        a.narrow(1, 0, 20).allclose(b.narrow(1, 0, 20), rtol: 0, atol: 0).Should().BeTrue("positions before 20 cannot see token 20");
        a.narrow(1, 20, 12).allclose(b.narrow(1, 20, 12)).Should().BeFalse("positions from 20 on do see it");
    }

    [Fact]
    public void State_dict_names_are_huggingfaces()
    {
        using var untied = new LlamaModel(TinyModels.Config(vocab: 50));
        untied.state_dict().Keys.Should().Contain([
            "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
            "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
            "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.layers.1.input_layernorm.weight",
            "model.layers.1.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight"]);
        untied.state_dict()["model.layers.0.self_attn.k_proj.weight"].shape.Should().Equal([32L, 64L]); // 2 KV heads of 16 dims
        untied.parameters().Sum(p => p.numel()).Should().Be(untied.Config.ParameterCount());

        using var tied = new LlamaModel(TinyModels.Config(vocab: 50, tied: true));
        tied.named_parameters().Select(p => p.name).Should().NotContain("lm_head.weight");
        tied.parameters().Sum(p => p.numel()).Should().Be(tied.Config.ParameterCount());
    }

    [Fact]
    public void Bf16_compute_on_fp32_weights_stays_close_to_fp32()
    {
        manual_seed(7);
        using var model = new LlamaModel(TinyModels.Config(vocab: 61));
        var ids = Tokens(61, 2, 16, seed: 8);
        using var _ = no_grad();
        var fp32 = model.forward(ids);
        model.ComputeType = ScalarType.BFloat16;
        var bf16 = model.forward(ids);

        bf16.dtype.Should().Be(ScalarType.Float32, "logits come back in float32 for the loss");
        model.parameters().Should().OnlyContain(p => p.dtype == ScalarType.Float32, "master weights stay float32");
        (bf16 - fp32).abs().max().item<float>().Should().BeLessThan(0.05f).And.BeGreaterThan(0f, "bf16 rounding is visible but small");
    }
}
