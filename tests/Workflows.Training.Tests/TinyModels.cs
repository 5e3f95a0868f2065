using Workflows.Training.Model;

namespace Workflows.Training.Tests;

static class TinyModels
{
    /// <summary>2 layers, d=64, 4 query heads sharing 2 KV heads (so GQA is exercised).</summary>
    public static LlamaConfig Config(int vocab, bool tied = false, RopeScaling? rope = null) =>
        new(VocabSize: vocab, HiddenSize: 64, IntermediateSize: 172, NumLayers: 2, NumHeads: 4, NumKeyValueHeads: 2,
            MaxPositionEmbeddings: 256, RmsNormEps: 1e-5, RopeTheta: 10_000, Rope: rope, TieWordEmbeddings: tied);

    /// <summary>Same shape, same dtype and every element equal (bit-identical for finite floats).</summary>
    public static bool Identical(TorchSharp.torch.Tensor a, TorchSharp.torch.Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();
}

/// <summary>Temporary folders a test class creates, removed when xUnit disposes the class.</summary>
public abstract class UsesTempDirectories : IDisposable
{
    readonly List<string> created = new();

    protected string NewTempDirectory()
    {
        string dir = Path.Combine(Path.GetTempPath(), "wf-training-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        created.Add(dir);
        return dir;
    }

    public void Dispose()
    {
        foreach (string dir in created)
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        GC.SuppressFinalize(this);
    }
}
