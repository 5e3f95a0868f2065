using System.Text.Json.Nodes;
using Workflows.Training.Bench;
using Workflows.Training.Loop;

namespace Workflows.Cli.Commands;

/// <summary>
/// The PyTorch twin's side of <c>wf bench train</c>: the matmul peak once, then training runs of bench/llama_twin.py,
/// in one process or in N under torchrun. A run that fails goes into the command's errors and the command carries on,
/// so our figures are printed whatever the twin does.
/// </summary>
internal sealed class BenchTwinRunner
{
    readonly CliContext cli;
    readonly BenchShape shape;
    readonly string script;
    readonly List<string> errors;

    BenchTwinRunner(CliContext cli, BenchShape shape, string script, List<string> errors, double peakFlops, string? torchVersion) =>
        (this.cli, this.shape, this.script, this.errors, PeakFlops, TorchVersion) = (cli, shape, script, errors, peakFlops, torchVersion);

    /// <summary>The bf16 (CUDA) or fp32 (CPU) matmul peak the twin measured.</summary>
    public double PeakFlops { get; }
    public string? TorchVersion { get; }

    /// <summary>Writes the twin script out and measures its peak; null (and an error recorded) when the twin cannot run.</summary>
    public static BenchTwinRunner? Start(CliContext cli, BenchShape s, TextWriter log, List<string> errors)
    {
        if (!s.Twin) return null;
        try
        {
            string script = s.TwinScript ?? PythonTwin.ExtractScript();
            log.WriteLine($"twin: {s.Python} {script}");
            var peak = PythonTwin.Run(s.Python, script, "peak", s.PeakArguments(), cli.Err);
            return new BenchTwinRunner(cli, s, script, errors, peak["peak_flops"]!.GetValue<double>(), peak["torch"]?.GetValue<string>());
        }
        catch (Exception e) when (e is TwinFailedException or ArgumentException or IOException)
        {
            errors.Add($"twin: {e.Message}");
            cli.Err.WriteLine($"error: {e.Message}");
            return null;
        }
    }

    /// <summary>The twin's train run in <paramref name="scheme"/> on <paramref name="processes"/> GPUs (torchrun above 1); null when it failed.</summary>
    public JsonObject? Train(TrainBenchSettings settings, string scheme, int processes = 1)
    {
        string label = processes > 1 ? $"twin ({scheme}, {processes} GPUs)" : $"twin ({scheme})";
        try
        {
            return PythonTwin.Run(shape.Python, script, "train", Arguments(settings, scheme), cli.Err, processes);
        }
        catch (Exception e) when (e is TwinFailedException or ArgumentException)
        {
            errors.Add($"{label}: {e.Message}");
            cli.Err.WriteLine($"error: {e.Message}");
            return null;
        }
    }

    List<string> Arguments(TrainBenchSettings settings, string scheme)
    {
        var args = new List<string>(PythonTwin.ShapeArguments(settings.Model, settings.Device, settings.Seed, shape.Threads))
        {
            "--contexts", string.Join(",", settings.Contexts.Select(c => PythonTwin.I(c))), "--micro-batch", PythonTwin.I(settings.MicroBatch),
            "--warmup", PythonTwin.I(settings.WarmupSteps), "--micro-batches", PythonTwin.I(settings.MicroBatches),
            "--optimizer-steps", PythonTwin.I(settings.OptimizerSteps), "--batch-tokens", PythonTwin.I(settings.BatchTokens),
            "--precision", BenchTrainCommand.PrecisionName(settings), "--scheme", scheme, "--offload", BenchTrainCommand.OffloadName(settings),
            "--loss-chunk", PythonTwin.I(settings.LossChunkTokens),
        };
        if (!settings.ActivationCheckpointing) args.Add("--no-checkpointing");
        return args;
    }
}
