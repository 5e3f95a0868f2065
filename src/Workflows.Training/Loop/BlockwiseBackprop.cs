using TorchSharp;
using TorchSharp.Modules;
using Workflows.Training.Model;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>
/// One micro-batch's forward and backward pass, block by block, with every tensor's lifetime decided here:
/// <list type="number">
/// <item>forward: embed, then each decoder block in turn; with recomputation (activation checkpointing) a block
/// runs without autograd and only its input is kept; without, each block keeps its own graph;</item>
/// <item>loss: final norm, then the chunked cross-entropy, which hands back the gradient of the final hidden state
/// and adds the head weight's gradient (<see cref="ChunkedCrossEntropy.LossAndGradients"/>);</item>
/// <item>backward, from the last block to the first: recompute the block with autograd on its kept input, ask
/// autograd for the gradients of the input and the block's parameters (<c>autograd.grad</c>, which never touches
/// <c>.grad</c>), add the parameter gradients into the float32 buffer, free the block's input and graph, carry
/// the input's gradient to the block below;</item>
/// <item>embedding: scatter-add the last gradient into the embedding rows of the batch's tokens.</item>
/// </list>
/// This replaces a custom autograd function per block (PyTorch's reentrant checkpoint): TorchSharp's
/// <c>autograd.Function</c> keeps an extra copy of every output and registers backward's temporaries nowhere,
/// so memory depended on the GC; here peak memory is the kept block inputs plus one block's working set.
/// The gradients are those of <see cref="LlamaModel.Loss"/> under plain autograd (tested on CPU).
/// </summary>
public sealed class BlockwiseBackprop
{
    readonly LlamaModel model;
    readonly FlatParameters flat;
    readonly GradientShards gradients;
    readonly ParameterGathering? gathering;
    readonly ParameterGroup embedding, finalNorm, head;
    readonly ParameterGroup[] blocks;

    /// <param name="gathering">ZeRO stage 3: gathers each group just before it is used and releases it after (needs <paramref name="recompute"/>).</param>
    public BlockwiseBackprop(LlamaModel model, FlatParameters flat, GradientShards gradients, bool recompute, int lossChunkTokens,
        ParameterGathering? gathering = null)
    {
        if (gathering is not null && !recompute)
            throw new ArgumentException("ZeRO stage 3 needs activation checkpointing (training.activation_checkpointing: true): a block's graph would keep its gathered parameters alive until the backward pass", nameof(recompute));
        this.model = model;
        this.flat = flat;
        this.gradients = gradients;
        this.gathering = gathering;
        Recompute = recompute;
        LossChunkTokens = lossChunkTokens;
        // By name: under stage 3 the parameters are empty placeholders, so their slots cannot be found by address.
        embedding = ParameterGroup.Of(flat, "model.embed_tokens.weight");
        finalNorm = ParameterGroup.Of(flat, "model.norm.weight");
        head = model.Config.TieWordEmbeddings ? embedding : ParameterGroup.Of(flat, "lm_head.weight");
        blocks = Enumerable.Range(0, model.Layers.Count).Select(i => ParameterGroup.Of(flat, $"model.layers.{i}.")).ToArray();
    }

    /// <summary>Recompute each block in the backward pass (activation checkpointing) instead of keeping its graph.</summary>
    public bool Recompute { get; }
    /// <summary>Positions per chunk of the LM head + loss; 0 = all positions in one chunk.</summary>
    public int LossChunkTokens { get; }

    /// <summary>
    /// Adds to the float32 gradients the gradient of <paramref name="weight"/> × the mean next-token loss of
    /// <paramref name="targets"/> [B, T] given <paramref name="inputs"/> [B, T] (int64, on the model's device).
    /// Returns that weighted loss as a 0-d float32 tensor on the device (read it once per step, not per micro-batch).
    /// </summary>
    public Tensor Accumulate(Tensor inputs, Tensor targets, double weight)
    {
        var layers = model.Layers;
        int count = layers.Count;
        long length = inputs.shape[1];
        var (cos, sin) = model.RopeTables(checked((int)length), inputs.device);
        var compute = model.ComputeType;

        // kept[i]: block i's input [B, T, d]; kept[count]: the last block's output. With recomputation these are
        // the only activations alive between forward and backward. Without it, graphs[i] holds block i's graph.
        var kept = new Tensor?[count + 1];
        var graphs = Recompute ? null : new (Tensor Input, Tensor Output)?[count];
        Tensor? gradient = null;
        Tensor loss;
        try
        {
            Gather(embedding);
            using (no_grad()) kept[0] = model.Embedding.forward(inputs).DetachFromDisposeScope();
            Release(embedding);
            for (int i = 0; i < count; i++)
            {
                using var scope = NewDisposeScope();
                if (Recompute)
                {
                    using var _ = no_grad();
                    Gather(blocks[i]);
                    kept[i + 1] = layers[i].Forward(kept[i]!, cos, sin, compute).DetachFromDisposeScope();
                    Release(blocks[i]);
                }
                else
                {
                    using var _ = enable_grad();
                    var input = kept[i]!.detach().requires_grad_(true).DetachFromDisposeScope();
                    var output = layers[i].Forward(input, cos, sin, compute).DetachFromDisposeScope();
                    graphs![i] = (input, output);
                    kept[i + 1] = output;
                }
            }

            Gather(finalNorm);
            Gather(head);
            using (var scope = NewDisposeScope())
            {
                var last = kept[count]!.detach().requires_grad_(true);
                Tensor normed;
                using (enable_grad()) normed = model.FinalNorm.forward(last);                  // [B, T, d]
                long positions = normed.shape[0] * normed.shape[1];
                // On one process the head's gradient goes straight into the flat float32 buffer; sharded, into a
                // scratch buffer handed over like any other group.
                var headGradient = Sharded ? zeros(head.Slots[0].Shape, ScalarType.Float32, inputs.device) : flat.GradientOf(head.Slots[0]);
                var (chunkLoss, normedGradient) = ChunkedCrossEntropy.LossAndGradients(
                    normed.detach().view(positions, -1), model.LmHeadWeight, targets.reshape(-1),
                    LossChunkTokens > 0 ? LossChunkTokens : checked((int)positions), weight, headGradient);
                if (Sharded) gradients.Add(head, [headGradient]);
                var grads = autograd.grad([normed], [last, finalNorm.Parameters[0]], [normedGradient.view(normed.shape)]);
                gradients.Add(finalNorm, [grads[1]]);
                gradient = grads[0].DetachFromDisposeScope();
                loss = chunkLoss.DetachFromDisposeScope();
            }
            Release(head);
            Release(finalNorm);
            Release(kept, count);

            for (int i = count - 1; i >= 0; i--)
            {
                using var scope = NewDisposeScope();
                Tensor input, output;
                if (Recompute)
                {
                    Gather(blocks[i]);
                    input = kept[i]!.detach().requires_grad_(true);
                    using (enable_grad()) output = layers[i].Forward(input, cos, sin, compute);
                }
                else
                {
                    (input, output) = graphs![i]!.Value;
                }
                var wrt = new List<Tensor>(blocks[i].Parameters.Count + 1) { input };
                wrt.AddRange(blocks[i].Parameters);
                var grads = autograd.grad([output], wrt, [gradient!]);
                gradients.Add(blocks[i], grads.Skip(1).ToList());
                Release(blocks[i]);

                var below = grads[0].DetachFromDisposeScope();
                gradient!.Dispose();
                gradient = below;
                if (!Recompute)
                {
                    graphs![i]!.Value.Input.Dispose();
                    graphs[i]!.Value.Output.Dispose();
                    graphs[i] = null;
                }
                Release(kept, i + 1);
            }

            // The embedding's gradient: row id receives the sum of the gradients at every position holding id (only
            // the token ids are needed, not the embedding's values: under stage 3 it is not gathered again).
            using (var scope = NewDisposeScope())
            {
                var embeddingGradient = Sharded ? zeros(embedding.Slots[0].Shape, ScalarType.Float32, inputs.device) : flat.GradientOf(embedding.Slots[0]);
                embeddingGradient.index_add_(0, inputs.reshape(-1), gradient!.reshape(-1, gradient.shape[^1]).to(ScalarType.Float32), 1);
                if (Sharded) gradients.Add(embedding, [embeddingGradient]);
            }
            return loss;
        }
        finally
        {
            gradient?.Dispose();
            for (int i = 0; i < kept.Length; i++) Release(kept, i);
            if (graphs is not null)
                foreach (var g in graphs)
                    if (g is { } pair) { pair.Input.Dispose(); pair.Output.Dispose(); }
        }
    }

    bool Sharded => gradients.Group.WorldSize > 1;

    /// <summary>
    /// A rank with no micro-batch in this round: takes part in every collective a micro-batch makes, in the same
    /// order, contributing zeros: under stage 3 the gathers of the forward pass (embedding, each block, final norm
    /// and head), then the reductions (head, final norm, each block from the last, gathered again, embedding).
    /// </summary>
    public void ContributeNothing()
    {
        if (!Sharded) return;
        Gather(embedding);
        Release(embedding);
        foreach (var block in blocks) { Gather(block); Release(block); }
        Gather(finalNorm);
        Gather(head);
        gradients.AddZeros(head);
        gradients.AddZeros(finalNorm);
        Release(head);
        Release(finalNorm);
        for (int i = blocks.Length - 1; i >= 0; i--)
        {
            Gather(blocks[i]);
            gradients.AddZeros(blocks[i]);
            Release(blocks[i]);
        }
        gradients.AddZeros(embedding);
    }

    void Gather(ParameterGroup group) => gathering?.Gather(group);

    void Release(ParameterGroup group) => gathering?.Release(group);

    // Without recomputation kept[i > 0] are the graphs' outputs, owned (and disposed) through graphs.
    void Release(Tensor?[] kept, int index)
    {
        if (Recompute || index == 0) kept[index]?.Dispose();
        kept[index] = null;
    }
}
