using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Training;

/// <summary>Turns "cpu", "cuda" or "cuda:N" into a TorchSharp device, loading the CUDA backend when asked.</summary>
public static class TorchDevice
{
    public static Device Resolve(string name)
    {
        if (name.Equals("cpu", StringComparison.OrdinalIgnoreCase)) return CPU;
        if (name.StartsWith("cuda", StringComparison.OrdinalIgnoreCase))
        {
            // Loads libtorch_cuda through the normal search path: on a GPU machine LD_LIBRARY_PATH points at the
            // machine's PyTorch torch/lib (see docs/training.md); throws with TorchSharp's load trace otherwise.
            InitializeDeviceType(DeviceType.CUDA);
            return new Device(name);
        }
        throw new ArgumentException($"unknown device \"{name}\" (cpu, cuda, cuda:N)", nameof(name));
    }
}
