using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Workflows.Training.Distributed;
using Workflows.Training.Model;

namespace Workflows.Training.Bench;

/// <summary>The twin's run failed (no Python, no torch, an error in the script, out of memory...).</summary>
public sealed class TwinFailedException(string message) : Exception(message);

/// <summary>
/// Runs <c>bench/llama_twin.py</c> (the same model in plain PyTorch; it ships inside this assembly, so an installed
/// <c>wf</c> needs no source tree) with a Python interpreter and reads the JSON object it prints last.
/// </summary>
public static class PythonTwin
{
    const string ResourceName = "Workflows.Training.Bench.llama_twin.py";

    /// <summary>The twin's source as shipped in this assembly.</summary>
    public static string Source()
    {
        using var stream = typeof(PythonTwin).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"resource {ResourceName} is missing from the assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Writes the shipped twin to a temporary file (named by its content) and returns the path.</summary>
    public static string ExtractScript()
    {
        string source = Source();
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(source)))[..12];
        string path = Path.Combine(Path.GetTempPath(), $"wf-llama-twin-{hash}.py");
        if (!File.Exists(path)) File.WriteAllText(path, source);
        return path;
    }

    /// <summary>Command-line arguments that give the twin <paramref name="config"/>'s shape (plain RoPE only).</summary>
    public static List<string> ShapeArguments(LlamaConfig config, string device, long seed, int threads)
    {
        if (config.RopeScaling.Kind != RopeScalingKind.None)
            throw new ArgumentException("the twin implements plain RoPE only (benchmark shapes use no scaling)", nameof(config));
        var args = new List<string>
        {
            "--vocab", I(config.VocabSize), "--hidden", I(config.HiddenSize), "--intermediate", I(config.IntermediateSize),
            "--layers", I(config.NumLayers), "--heads", I(config.NumHeads), "--kv-heads", I(config.NumKeyValueHeads),
            "--rope-theta", config.RopeTheta.ToString("R", CultureInfo.InvariantCulture),
            "--rms-eps", config.RmsNormEps.ToString("R", CultureInfo.InvariantCulture),
            "--device", device, "--seed", seed.ToString(CultureInfo.InvariantCulture), "--threads", I(threads),
        };
        if (config.TieWordEmbeddings) args.Add("--tied");
        return args;
    }

    public static string I(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Runs <c>python script mode args...</c>; returns the JSON object on the last line of stdout. The twin's
    /// stderr (warnings, tracebacks) goes to <paramref name="log"/> as it comes. With <paramref name="processes"/>
    /// above 1 the script runs under <c>python -m torch.distributed.run --standalone --nproc_per_node N</c>
    /// (torchrun, from the same interpreter), with NVLink multicast kept off unless the caller's environment says
    /// otherwise (<see cref="NcclCollectives.MulticastOff"/>); rank 0 prints the JSON.
    /// </summary>
    public static JsonObject Run(string python, string script, string mode, IEnumerable<string> arguments, TextWriter? log = null, int processes = 1)
    {
        var start = new ProcessStartInfo(python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (processes > 1)
        {
            foreach (var a in new[] { "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", I(processes) }) start.ArgumentList.Add(a);
            foreach (var (name, value) in NcclCollectives.MulticastOff)
                if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name))) start.Environment[name] = value;
        }
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(mode);
        foreach (var a in arguments) start.ArgumentList.Add(a);
        start.Environment["PYTHONUNBUFFERED"] = "1";
        string launched = processes > 1 ? $"torchrun --nproc_per_node {processes} " : "";

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new TwinFailedException($"could not start {python}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new TwinFailedException($"could not start {python}: {e.Message} (pass --python PATH or --no-twin)");
        }
        using (process)
        {
            var errors = new System.Text.StringBuilder();
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (errors) errors.AppendLine(e.Data);
                log?.WriteLine($"  twin: {e.Data}");
            };
            process.BeginErrorReadLine();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            string? last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
            if (process.ExitCode != 0 || last is null || !last.StartsWith('{'))
            {
                string[] lines;
                lock (errors) lines = errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                // A rank's own account of its failure (the script prints "twin: rank R failed: ...") beats torchrun's summary.
                string tail = lines.LastOrDefault(l => l.StartsWith("twin: rank ", StringComparison.Ordinal) && l.Contains(" failed: ", StringComparison.Ordinal))
                    ?? string.Join(" | ", lines.TakeLast(2));
                throw new TwinFailedException($"the twin ({launched}{python} {Path.GetFileName(script)} {mode}) exited with {process.ExitCode}: {tail.Trim()}");
            }
            return JsonNode.Parse(last)!.AsObject();
        }
    }
}
