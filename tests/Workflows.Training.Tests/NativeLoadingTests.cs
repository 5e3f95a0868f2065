using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training.Tests;

public class NativeLoadingTests
{
    [Fact]
    public void Torch_loads_and_multiplies_matrices_on_cpu()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }, 2, 2);
        using var b = tensor(new float[] { 5, 6, 7, 8 }, 2, 2);
        using var c = a.matmul(b);
        c.data<float>().ToArray().Should().Equal(19f, 22f, 43f, 50f);
    }
}
