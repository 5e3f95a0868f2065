using System.CommandLine;
using System.Diagnostics;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary>
/// Benchmarks anyone can rerun. Each prints what it measured and on what machine; none runs in the test suite.
/// </summary>
public static class BenchCommand
{
    public static Command Create(CliContext cli)
    {
        var bench = new Command("bench", "Benchmarks: wf bench validate | prep | storage | train | prefill | engine | collectives. Each prints what it measured and the machine.");
        bench.Subcommands.Add(Validate(cli));
        bench.Subcommands.Add(BenchPrepCommand.Create(cli));
        bench.Subcommands.Add(BenchStorageCommand.Create(cli));
        bench.Subcommands.Add(BenchTrainCommand.Create(cli));
        bench.Subcommands.Add(BenchPrefillCommand.Create(cli));
        bench.Subcommands.Add(BenchEngineCommand.Create(cli));
        bench.Subcommands.Add(BenchCollectivesCommand.Create(cli));
        return bench;
    }

    private static Command Validate(CliContext cli)
    {
        var count = new Option<int>("--count") { Description = "How many experiment files to generate and validate.", DefaultValueFactory = _ => 1000 };
        var template = new Option<string>("--from")
        {
            Description = "Experiment file to copy (each copy gets its own name and seed).",
            DefaultValueFactory = _ => Path.Combine("experiments", "per-source-5b-80k.yaml"),
        };
        var command = new Command("validate", """
            Time the validation of a folder of N experiment files (copies of one example with distinct names and
            seeds), the way 'wf validate experiments/' reads them: parse, bind, rules, policy, content hash.

            Example:
              wf bench validate --count 1000
            """)
        {
            count, template,
        };
        command.SetAction(parse =>
        {
            var n = parse.GetValue(count);
            var source = File.ReadAllText(parse.GetValue(template)!);
            var name = ExperimentLoader.LoadText("template.yaml", source, new LoadOptions(PolicyMode.Off)).Require().Name;
            var root = Path.Combine(Path.GetTempPath(), $"wf-bench-{Environment.ProcessId}", "experiments");
            Directory.CreateDirectory(root);
            try
            {
                for (var i = 0; i < n; i++)
                {
                    var copy = $"{name}-{i:D5}";
                    File.WriteAllText(Path.Combine(root, copy + ".yaml"),
                        source.Replace($"name: {name}", $"name: {copy}", StringComparison.Ordinal)
                              .Replace("seed: 15213", $"seed: {15213 + i}", StringComparison.Ordinal));
                }

                // Warm-up run on one file so JIT time is reported separately from steady-state throughput.
                var jit = Stopwatch.StartNew();
                ExperimentLoader.LoadFile(Path.Combine(root, $"{name}-00000.yaml")).Require();
                jit.Stop();

                var watch = Stopwatch.StartNew();
                var invalid = 0;
                foreach (var file in Directory.EnumerateFiles(root, "*.yaml"))
                {
                    var result = ExperimentLoader.LoadFile(file);
                    if (!result.IsValid)
                    {
                        invalid++;
                    }
                    else
                    {
                        _ = Workflows.Experiments.Spec.CanonicalForm.Hash(result.Spec!);
                    }
                }

                watch.Stop();
                cli.Out.WriteLine($"validated {n} files in {watch.Elapsed.TotalSeconds:0.000} s ({n / watch.Elapsed.TotalSeconds:0} files/s, {watch.Elapsed.TotalMilliseconds / n:0.00} ms/file); first file incl. JIT {jit.Elapsed.TotalMilliseconds:0} ms; invalid: {invalid}");
                cli.Out.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}");
                return invalid == 0 ? ExitCodes.Ok : ExitCodes.InvalidInput;
            }
            finally
            {
                Directory.Delete(Path.GetDirectoryName(root)!, recursive: true);
            }
        });
        return command;
    }
}
