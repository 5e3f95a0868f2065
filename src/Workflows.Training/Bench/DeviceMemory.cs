using System.Runtime.InteropServices;

namespace Workflows.Training.Bench;

/// <summary>
/// Device memory as the CUDA runtime sees it. TorchSharp 0.107 exposes none of torch.cuda's memory statistics
/// (no max_memory_allocated, no empty_cache), so the benchmark asks the CUDA runtime that libtorch_cuda already
/// loaded (cudaMemGetInfo): total − free = everything this process (and any other on the GPU) holds, i.e. the
/// caching allocator's reserved blocks plus the CUDA context. The caching allocator keeps what it reserved, so
/// read after a run this is close to the run's peak *reserved* memory (PyTorch's max_memory_reserved + context),
/// not its peak *allocated* memory. The twin reports the same reading beside PyTorch's own counters.
/// </summary>
public static class DeviceMemory
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate int MemGetInfo(out nuint free, out nuint total);

    static readonly Lazy<MemGetInfo?> memGetInfo = new(Find);

    /// <summary>(used, total) bytes of the current CUDA device, or null when no CUDA runtime is loaded.</summary>
    public static (long Used, long Total)? Read()
    {
        var f = memGetInfo.Value;
        if (f is null || f(out var free, out var total) != 0) return null;
        return ((long)(total - free), (long)total);
    }

    static MemGetInfo? Find()
    {
        // Already loaded by libtorch_cuda when CUDA is initialised; dlopen by soname finds that copy.
        foreach (var name in new[] { "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so" })
        {
            if (NativeLibrary.TryLoad(name, out var handle) && NativeLibrary.TryGetExport(handle, "cudaMemGetInfo", out var address))
                return Marshal.GetDelegateForFunctionPointer<MemGetInfo>(address);
        }
        return null;
    }
}
