using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Workflows.Cli.Commands;

/// <summary>wf doctor: which libtorch was loaded, whether CUDA works, which GPU, and whether bf16 matmuls run.</summary>
public static class DoctorCommand
{
    public static Command Create(CliContext cli)
    {
        var command = new Command("doctor", """
            Check the machine for training: the .NET runtime, the libtorch TorchSharp loaded (CPU libtorch from the build
            output, or the CUDA libtorch of a PyTorch install on LD_LIBRARY_PATH), CUDA devices, and a bf16 matmul on the
            GPU (the precision training uses). Exit code 1 when libtorch cannot be loaded.

            Example:
              wf doctor
              LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")') wf doctor
            """);
        command.SetAction(_ =>
        {
            cli.Out.WriteLine($".NET {Environment.Version} on {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture}), {Environment.ProcessorCount} cores");
            cli.Out.WriteLine($"LD_LIBRARY_PATH: {Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "(unset)"}");
            try
            {
                using (var a = ones(2, 2))
                using (var b = a.matmul(a))
                {
                    cli.Out.WriteLine($"libtorch: loaded (TorchSharp {typeof(torch).Assembly.GetName().Version}); CPU matmul ok ({b[0, 0].item<float>()})");
                }

                var libtorch = Process.GetCurrentProcess().Modules.Cast<ProcessModule>()
                    .FirstOrDefault(m => m.ModuleName.StartsWith("libtorch_cpu", StringComparison.Ordinal))?.FileName;
                cli.Out.WriteLine($"libtorch_cpu: {libtorch ?? "(not found among loaded modules)"}");
            }
            catch (Exception e)
            {
                cli.Out.WriteLine($"libtorch: NOT loaded: {e.Message}");
                cli.Out.WriteLine("hint: the build copies a patched CPU libtorch next to wf (see docs/training.md); on a GPU machine put torch/lib of a PyTorch install on LD_LIBRARY_PATH");
                return ExitCodes.InvalidInput;
            }

            bool cudaAvailable;
            try
            {
                cudaAvailable = cuda.is_available();
            }
            catch (Exception e)
            {
                cli.Out.WriteLine($"CUDA: could not be initialised ({e.Message})");
                cudaAvailable = false;
            }

            if (!cudaAvailable)
            {
                cli.Out.WriteLine("CUDA: not available (CPU libtorch, or no GPU): training and evaluation run on the CPU (--device cpu)");
                return ExitCodes.Ok;
            }

            cli.Out.WriteLine($"CUDA: available, {cuda.device_count()} device(s)");
            try
            {
                using var x = randn(4096, 4096, dtype: ScalarType.BFloat16, device: CUDA);
                var watch = Stopwatch.StartNew();
                using (var y = x.matmul(x))
                {
                    cuda.synchronize();
                }

                cli.Out.WriteLine($"bf16 matmul on cuda: ok ({watch.Elapsed.TotalMilliseconds:0.0} ms for 4096^3 incl. warm-up); flash attention is used through scaled_dot_product_attention when the CUDA libtorch provides it");
            }
            catch (Exception e)
            {
                cli.Out.WriteLine($"bf16 matmul on cuda: FAILED ({e.Message}): use precision: fp32");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
