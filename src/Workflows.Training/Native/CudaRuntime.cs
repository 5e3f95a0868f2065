using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Workflows.Training.Native;

/// <summary>A CUDA runtime call failed; the message is the runtime's own (<c>cudaGetErrorString</c>).</summary>
public sealed class CudaException(string call, int code, string message)
    : Exception($"{call} failed: CUDA error {code} ({message})")
{
    public int Code { get; } = code;
}

/// <summary>
/// The few CUDA runtime calls TorchSharp 0.107 does not expose: memory information, copies between device memory
/// and host memory on streams of our own, page-locking host memory. They bind to the <c>libcudart</c> that
/// libtorch_cuda already loaded (the GPU machine's PyTorch ships it), looked up by soname, so the process uses one
/// CUDA runtime and one context. Nothing here is needed, or loaded, on a CPU-only machine.
/// <para>
/// Ordering with libtorch: libtorch computes on the legacy default stream (stream 0) unless told otherwise. Our
/// streams are created non-blocking, so a copy on them does not wait for libtorch's kernels: callers synchronise
/// (<see cref="Synchronize"/>, or <c>torch.cuda.synchronize</c>) before copying what a kernel produced.
/// </para>
/// </summary>
public static class CudaRuntime
{
    public enum CopyKind { HostToDevice = 1, DeviceToHost = 2 }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int MemGetInfoFn(out nuint free, out nuint total);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int MemcpyAsyncFn(nint dst, nint src, nuint count, int kind, nint stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int StreamCreateWithFlagsFn(out nint stream, uint flags);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int StreamFn(nint stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int HostRegisterFn(nint ptr, nuint size, uint flags);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int HostUnregisterFn(nint ptr);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int SetDeviceFn(int device);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int DeviceSynchronizeFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate nint GetErrorStringFn(int code);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int GetDefaultMemPoolFn(out nint pool, int device);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int MemPoolAttributeFn(nint pool, int attribute, ref ulong value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int GetDeviceFn(out int device);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate int StreamQueryFn(nint stream);

    sealed record Api(
        MemGetInfoFn MemGetInfo, MemcpyAsyncFn MemcpyAsync, StreamCreateWithFlagsFn StreamCreateWithFlags,
        StreamFn StreamSynchronize, StreamFn StreamDestroy, HostRegisterFn HostRegister, HostUnregisterFn HostUnregister,
        SetDeviceFn SetDevice, DeviceSynchronizeFn DeviceSynchronize, GetErrorStringFn GetErrorString,
        GetDefaultMemPoolFn GetDefaultMemPool, MemPoolAttributeFn MemPoolGetAttribute, MemPoolAttributeFn MemPoolSetAttribute, GetDeviceFn GetDevice,
        StreamQueryFn StreamQuery);

    static readonly Lazy<Api?> api = new(Bind);

    /// <summary>True when a CUDA runtime is loaded in this process (libtorch found a GPU).</summary>
    public static bool IsAvailable => api.Value is not null;

    static Api Require() => api.Value ?? throw new InvalidOperationException("no CUDA runtime is loaded in this process (libcudart not found)");

    static Api? Bind()
    {
        foreach (var name in new[] { "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so" })
        {
            if (!NativeLibrary.TryLoad(name, out var handle)) continue;
            T F<T>(string export) where T : Delegate => Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.GetExport(handle, export));
            try
            {
                return new Api(F<MemGetInfoFn>("cudaMemGetInfo"), F<MemcpyAsyncFn>("cudaMemcpyAsync"),
                    F<StreamCreateWithFlagsFn>("cudaStreamCreateWithFlags"), F<StreamFn>("cudaStreamSynchronize"),
                    F<StreamFn>("cudaStreamDestroy"), F<HostRegisterFn>("cudaHostRegister"), F<HostUnregisterFn>("cudaHostUnregister"),
                    F<SetDeviceFn>("cudaSetDevice"), F<DeviceSynchronizeFn>("cudaDeviceSynchronize"), F<GetErrorStringFn>("cudaGetErrorString"),
                    F<GetDefaultMemPoolFn>("cudaDeviceGetDefaultMemPool"), F<MemPoolAttributeFn>("cudaMemPoolGetAttribute"),
                    F<MemPoolAttributeFn>("cudaMemPoolSetAttribute"), F<GetDeviceFn>("cudaGetDevice"), F<StreamQueryFn>("cudaStreamQuery"));
            }
            catch (EntryPointNotFoundException)
            {
                continue;
            }
        }
        return null;
    }

    static void Check(int code, string call)
    {
        if (code == 0) return;
        string message = Marshal.PtrToStringAnsi(Require().GetErrorString(code)) ?? "unknown";
        throw new CudaException(call, code, message);
    }

    /// <summary>(used, total) bytes of the current device: total − free, i.e. what every process holds on it (for us: the caching allocator's reserved blocks plus the CUDA context). Null without CUDA.</summary>
    public static (long Used, long Total)? MemoryInfo()
    {
        var a = api.Value;
        if (a is null || a.MemGetInfo(out var free, out var total) != 0) return null;
        return ((long)(total - free), (long)total);
    }

    /// <summary>
    /// True when libtorch allocates through CUDA's own pool allocator (<c>PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync</c>).
    /// Then the pool's counters are the allocator's statistics (PyTorch's max_memory_allocated/reserved read the
    /// same counters). The default caching allocator exposes none to TorchSharp.
    /// </summary>
    public static bool PoolAllocator =>
        (Environment.GetEnvironmentVariable("PYTORCH_CUDA_ALLOC_CONF") ?? "").Contains("backend:cudaMallocAsync", StringComparison.Ordinal);

    /// <summary>Peak bytes in use and reserved in the current device's default memory pool since the last <see cref="ResetPoolPeaks"/>; null unless <see cref="PoolAllocator"/>.</summary>
    public static (long PeakAllocated, long PeakReserved)? PoolPeaks()
    {
        if (!PoolAllocator || Pool() is not { } pool) return null;
        var a = Require();
        ulong used = 0, reserved = 0;
        Check(a.MemPoolGetAttribute(pool, 8 /* cudaMemPoolAttrUsedMemHigh */, ref used), "cudaMemPoolGetAttribute");
        Check(a.MemPoolGetAttribute(pool, 6 /* cudaMemPoolAttrReservedMemHigh */, ref reserved), "cudaMemPoolGetAttribute");
        return ((long)used, (long)reserved);
    }

    /// <summary>Starts new peaks of the default memory pool (setting a high-water mark to 0 resets it to the current value).</summary>
    public static void ResetPoolPeaks()
    {
        if (!PoolAllocator || Pool() is not { } pool) return;
        var a = Require();
        ulong zero = 0;
        Check(a.MemPoolSetAttribute(pool, 8, ref zero), "cudaMemPoolSetAttribute");
        zero = 0;
        Check(a.MemPoolSetAttribute(pool, 6, ref zero), "cudaMemPoolSetAttribute");
    }

    static nint? Pool()
    {
        var a = api.Value;
        if (a is null || a.GetDevice(out int device) != 0 || a.GetDefaultMemPool(out var pool, device) != 0) return null;
        return pool;
    }

    /// <summary>Makes <paramref name="device"/> current on the calling thread (each thread starts on device 0).</summary>
    public static void SetDevice(int device) => Check(Require().SetDevice(device), "cudaSetDevice");

    /// <summary>Waits for all work on the current device, libtorch's included.</summary>
    public static void Synchronize() => Check(Require().DeviceSynchronize(), "cudaDeviceSynchronize");

    /// <summary>A non-blocking stream (it never waits for the legacy default stream libtorch uses).</summary>
    public static nint CreateStream()
    {
        Check(Require().StreamCreateWithFlags(out var stream, 1u /* cudaStreamNonBlocking */), "cudaStreamCreateWithFlags");
        return stream;
    }

    /// <summary>True when all work queued on <paramref name="stream"/> (0: the legacy default stream) is done; throws on a failed kernel.</summary>
    public static bool StreamIdle(nint stream)
    {
        int code = Require().StreamQuery(stream);
        if (code == 600 /* cudaErrorNotReady */) return false;
        Check(code, "cudaStreamQuery");
        return true;
    }

    public static void SynchronizeStream(nint stream) => Check(Require().StreamSynchronize(stream), "cudaStreamSynchronize");

    public static void DestroyStream(nint stream) => Require().StreamDestroy(stream);

    /// <summary>Queues a copy of <paramref name="bytes"/> on <paramref name="stream"/>; with page-locked host memory it runs on a copy engine while the GPU computes.</summary>
    public static void CopyAsync(nint destination, nint source, long bytes, CopyKind kind, nint stream) =>
        Check(Require().MemcpyAsync(destination, source, (nuint)bytes, (int)kind, stream), "cudaMemcpyAsync");

    /// <summary>Page-locks host memory so copies to and from the device run at full PCIe speed without a staging copy.</summary>
    public static void PageLock(nint pointer, long bytes) => Check(Require().HostRegister(pointer, (nuint)bytes, 0), "cudaHostRegister");

    public static void PageUnlock(nint pointer) => Require().HostUnregister(pointer);
}

/// <summary>Raw data pointers of TorchSharp tensors (device or host), which TorchSharp 0.107 does not expose.</summary>
public static class TensorPointers
{
    [DllImport("LibTorchSharp")]
    static extern nint THSTensor_data(nint handle);

    /// <summary>The address of <paramref name="tensor"/>'s first element (its storage offset included). The tensor must be contiguous.</summary>
    public static nint DataPointer(Tensor tensor)
    {
        if (!tensor.is_contiguous()) throw new ArgumentException("the tensor must be contiguous", nameof(tensor));
        nint pointer = THSTensor_data(tensor.Handle);
        if (pointer == 0 && tensor.numel() > 0) throw new InvalidOperationException("libtorch returned no data pointer for the tensor");
        return pointer;
    }
}
