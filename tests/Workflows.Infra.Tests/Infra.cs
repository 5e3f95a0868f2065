using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using k8s;

namespace Workflows.Infra.Tests;

/// <summary>Finds the repository's infra/ folder and loads what the tests check, from the real files.</summary>
public static class Infra
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();
    public static string K8s => Path.Combine(RepositoryRoot, "infra", "k8s");
    public static string Azure => Path.Combine(RepositoryRoot, "infra", "azure");

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Workflows.sln")) && Directory.Exists(Path.Combine(dir.FullName, "infra")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"No folder with Workflows.sln and infra/ above {AppContext.BaseDirectory}.");
    }

    /// <summary>Every Kubernetes object in one YAML file (strict: an unknown field, e.g. a typo, is an error).</summary>
    public static List<object> LoadObjects(string path) => KubernetesYaml.LoadAllFromString(File.ReadAllText(path), null, true);

    /// <summary>Files that are Kubernetes objects (kustomization.yaml files are kustomize's own format).</summary>
    public static IEnumerable<string> ManifestFiles() =>
        Directory.EnumerateFiles(K8s, "*.yaml", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) != "kustomization.yaml")
            .Order(StringComparer.Ordinal);

    public static List<object> BaseObjects() =>
        Directory.EnumerateFiles(Path.Combine(K8s, "base"), "*.yaml")
            .Where(f => Path.GetFileName(f) is not ("kustomization.yaml" or "storage-secret.template.yaml"))
            .Order(StringComparer.Ordinal)
            .SelectMany(LoadObjects)
            .ToList();

    public static string BicepPath =>
        typeof(Infra).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "BicepPath").Value
        ?? throw new InvalidOperationException("BicepPath metadata missing");

    private static readonly Lazy<JsonObject> CompiledTemplate = new(() =>
    {
        var result = RunBicep("build", Path.Combine(Azure, "main.bicep"), "--stdout");
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException("bicep build failed:\n" + result.Stderr);
        }
        return JsonNode.Parse(result.Stdout)!.AsObject();
    });

    /// <summary>main.bicep compiled to an ARM template (modules become nested deployments).</summary>
    public static JsonObject Template => CompiledTemplate.Value;

    public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

    public static ProcessResult RunBicep(params string[] args)
    {
        var bicep = BicepPath;
        File.Exists(bicep).Should().BeTrue($"the Bicep compiler ships in the Azure.Bicep.CommandLine.linux-x64 package ({bicep})");
        // The compiler package is linux-x64 only, so the tests are too.
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("The Bicep tests use the linux-x64 compiler package.");
        }
        var mode = File.GetUnixFileMode(bicep);
        if (!mode.HasFlag(UnixFileMode.UserExecute))
        {
            File.SetUnixFileMode(bicep, mode | UnixFileMode.UserExecute); // some NuGet extractions drop the x bit
        }
        return Run(bicep, args);
    }

    public static ProcessResult Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} ran over 60 s");
        }
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Every resource of the compiled template, nested deployments' resources included.</summary>
    public static IEnumerable<JsonObject> AllResources(JsonObject template)
    {
        foreach (var r in template["resources"]!.AsArray().Select(n => n!.AsObject()))
        {
            yield return r;
            if (r["properties"]?["template"] is JsonObject nested)
            {
                foreach (var inner in AllResources(nested))
                {
                    yield return inner;
                }
            }
        }
    }

    public static IEnumerable<JsonObject> ResourcesOfType(string type) =>
        AllResources(Template).Where(r => (string?)r["type"] == type);

    /// <summary>A variable of main.bicep (literal values only).</summary>
    public static string Variable(string name) => (string)Template["variables"]![name]!;

    public static JsonNode? ParameterDefault(string name) => Template["parameters"]![name]!["defaultValue"];
}
