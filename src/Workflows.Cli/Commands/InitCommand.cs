using System.CommandLine;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Workflows.Experiments.Schema;

namespace Workflows.Cli.Commands;

/// <summary>
/// <c>wf init [DIR]</c>: scaffolds an experiments repository, so an installed wf works outside its own source tree:
/// experiments/ (the JSON Schema, an example and an example sweep that run on a laptop, and the paper's experiments under paper/), workflows/ (the template), the GitOps
/// workflows in .github/workflows/ (installing the wf tool, not building it), samples/ (the public-domain corpus and
/// haystack the example reads) and a .gitignore. Existing files are kept unless --force.
/// </summary>
public static partial class InitCommand
{
    private const string Prefix = "scaffold/";

    public static Command Create(CliContext cli)
    {
        var directory = new Argument<string>("directory") { Description = "Folder to scaffold (created if missing).", DefaultValueFactory = _ => "." };
        var force = new Option<bool>("--force") { Description = "Overwrite files that already exist." };
        var command = new Command("init", """
            Scaffold an experiments repository: experiments/ (schema.json for editors, example.yaml: a CPU-sized run over
            the shipped public-domain sample, example-sweep.yaml: three such variants to compare, paper/: the paper's
            experiments to copy from, its Table 3/5 as one sweep), workflows/continual-pretraining.yaml, .github/workflows/ (pull-request
            plan comments, /run, archive, rerun; they install this wf version from NuGet, or from the feed in the
            repository variable WF_NUGET_SOURCE), samples/ and .gitignore. Existing files are left as they are.

            Example:
              mkdir my-experiments && cd my-experiments && wf init
              wf run experiments/example.yaml
            """)
        {
            directory, force,
        };
        command.SetAction(parse =>
        {
            var root = Path.GetFullPath(parse.GetValue(directory)!);
            var overwrite = parse.GetValue(force);
            var written = new List<string>();
            var kept = new List<string>();
            foreach (var (relative, content) in Files())
            {
                var path = Path.Combine(root, relative.Replace('/', Path.DirectorySeparatorChar));
                if (File.Exists(path) && !overwrite)
                {
                    kept.Add(relative);
                    continue;
                }

                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllBytes(path, content);
                written.Add(relative);
            }

            foreach (var f in written)
            {
                cli.Out.WriteLine($"wrote  {f}");
            }

            foreach (var f in kept)
            {
                cli.Out.WriteLine($"kept   {f} (exists; --force overwrites)");
            }

            cli.Out.WriteLine($"""

                Experiments repository in {root}. Next:
                  wf validate experiments/
                  wf plan experiments/example.yaml
                  wf run experiments/example.yaml      # local storage (Azurite, installed on first use; needs Node.js >= 20)
                """);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Every scaffolded file as (path relative to the repository, bytes), in path order.</summary>
    public static IReadOnlyList<(string Path, byte[] Content)> Files()
    {
        var assembly = typeof(InitCommand).Assembly;
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            var relative = name[Prefix.Length..].Replace('\\', '/');
            var bytes = Read(assembly, name);
            if (relative == "experiments/smoke.yaml")
            {
                files["experiments/example.yaml"] = Encoding.UTF8.GetBytes(ExampleExperiment(Encoding.UTF8.GetString(bytes)));
            }
            else if (relative == "experiments/smoke-sweep.yaml")
            {
                files["experiments/example-sweep.yaml"] = Encoding.UTF8.GetBytes(ExampleSweep(Encoding.UTF8.GetString(bytes)));
            }
            else if (relative.StartsWith(".github/workflows/", StringComparison.Ordinal))
            {
                files[relative] = Encoding.UTF8.GetBytes(InstallToolInsteadOfBuilding(Encoding.UTF8.GetString(bytes)));
            }
            else
            {
                files[relative] = bytes;
            }
        }

        files["experiments/schema.json"] = Encoding.UTF8.GetBytes(SchemaGenerator.Generate());
        files[".gitignore"] = Encoding.UTF8.GetBytes("""
            # wf's local store (Azurite data) and outputs of wf prep/train/eval run by hand
            .wf/
            out/

            """);
        return [.. files.Select(f => (f.Key, f.Value))];
    }

    /// <summary>The smoke experiment as the repository's example: same settings, its own name.</summary>
    public static string ExampleExperiment(string smoke) =>
        smoke.Replace("name: smoke", "name: example", StringComparison.Ordinal)
            .Replace("# A laptop-sized run of the whole pipeline", "# An example: a laptop-sized run of the whole pipeline", StringComparison.Ordinal);

    /// <summary>The smoke sweep as the repository's example sweep (matrix:, then wf compare): same settings, its own name.</summary>
    public static string ExampleSweep(string smokeSweep) =>
        smokeSweep.Replace("name: smoke-sweep", "name: example-sweep", StringComparison.Ordinal)
            .Replace("experiments/smoke-sweep.yaml", "experiments/example-sweep.yaml", StringComparison.Ordinal)
            .Replace("# A CPU-sized sweep (what CI runs end to end):", "# An example sweep, CPU-sized:", StringComparison.Ordinal);

    /// <summary>
    /// The repository's workflows build wf from source (src/Workflows.Cli, global.json); an experiments repository has
    /// neither: each "Build wf" step becomes "Install wf", the tool of this version from NuGet or from the feed in the
    /// repository variable WF_NUGET_SOURCE, and the SDK comes by version instead of from global.json.
    /// </summary>
    public static string InstallToolInsteadOfBuilding(string workflow)
    {
        var version = typeof(InitCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.1.0";
        var replaced = BuildStep().Replace(workflow, m =>
            $"{m.Groups["indent"].Value}- name: Install wf\n"
            + $"{m.Groups["indent"].Value}  env:\n"
            + $"{m.Groups["indent"].Value}    WF_NUGET_SOURCE: ${{{{ vars.WF_NUGET_SOURCE }}}}\n"
            + $"{m.Groups["indent"].Value}  run: |\n"
            + $"{m.Groups["indent"].Value}    dotnet tool install wf --version {version} --tool-path \"$RUNNER_TEMP/wf\" ${{WF_NUGET_SOURCE:+--add-source \"$WF_NUGET_SOURCE\"}}\n"
            + $"{m.Groups["indent"].Value}    echo \"$RUNNER_TEMP/wf\" >> \"$GITHUB_PATH\"\n");
        replaced = replaced.Replace("global-json-file: global.json", "dotnet-version: \"10.0.x\"", StringComparison.Ordinal);
        if (replaced.Contains("src/Workflows.Cli", StringComparison.Ordinal) || replaced.Contains("global.json", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("a workflow still builds wf from source after rewriting its 'Build wf' steps: update InitCommand");
        }

        return replaced;
    }

    private static byte[] Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    [GeneratedRegex(@"^(?<indent>[ ]*)- name: Build wf\n\k<indent>  run: \|\n(\k<indent>    .*\n)+", RegexOptions.Multiline)]
    private static partial Regex BuildStep();
}
