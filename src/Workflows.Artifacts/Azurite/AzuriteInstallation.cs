using System.Diagnostics;

namespace Workflows.Artifacts.Azurite;

/// <summary>
/// The pinned Azurite package in <c>infra/azurite</c> (package.json + package-lock.json; node_modules is created by
/// <c>npm ci</c> and not committed).
/// </summary>
public sealed record AzuriteInstallation(string PackageDirectory)
{
    /// <summary>Overrides where infra/azurite is (e.g. an installed wf outside the repository).</summary>
    public const string DirectoryVariable = "WF_AZURITE_DIR";

    /// <summary>The launcher npm creates; its presence means <c>npm ci</c> has run.</summary>
    public string BinPath => Path.Combine(PackageDirectory, "node_modules", ".bin", "azurite");

    /// <summary>
    /// What .bin/azurite points to. We run <c>node</c> on it directly: the same program, but it works where .bin
    /// holds a .cmd shim (Windows) and a missing Node.js gives one clear error instead of a shebang failure.
    /// </summary>
    public string EntryScript => Path.Combine(PackageDirectory, "node_modules", "azurite", "dist", "src", "azurite.js");

    public bool IsInstalled => File.Exists(EntryScript) && (File.Exists(BinPath) || File.Exists(BinPath + ".cmd"));

    /// <summary>
    /// Finds infra/azurite: <c>WF_AZURITE_DIR</c> when set, else the first <c>infra/azurite/package.json</c> found
    /// walking up from <paramref name="startDirectory"/> (default: the current directory), then from the directory
    /// of the running assembly.
    /// </summary>
    public static AzuriteInstallation Locate(string? startDirectory = null)
    {
        var fromEnv = Environment.GetEnvironmentVariable(DirectoryVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            return File.Exists(Path.Combine(fromEnv, "package.json"))
                ? new AzuriteInstallation(Path.GetFullPath(fromEnv))
                : throw new AzuriteNotInstalledException($"{DirectoryVariable}={fromEnv} does not contain Azurite's package.json.");
        }
        foreach (var start in new[] { startDirectory ?? Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "infra", "azurite");
                if (File.Exists(Path.Combine(candidate, "package.json")))
                {
                    return new AzuriteInstallation(candidate);
                }
            }
        }
        throw new AzuriteNotInstalledException(
            $"Cannot find infra/azurite/package.json above '{startDirectory ?? Directory.GetCurrentDirectory()}'; run wf inside the repository, set {DirectoryVariable}, or set {StorageConnection.ConnectionStringVariable} to use other storage.");
    }

    /// <summary>Runs <c>npm ci</c> in the package directory (about half a minute, ~360 MB of node_modules).</summary>
    public async Task InstallAsync(TextWriter? log = null, CancellationToken cancellationToken = default)
    {
        log?.WriteLine($"Installing the pinned Azurite: npm ci in {PackageDirectory} ...");
        var psi = new ProcessStartInfo("npm")
        {
            WorkingDirectory = PackageDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // --ignore-scripts: Azurite needs no install scripts (the one dependency that has one only prints a warning).
        foreach (var arg in new[] { "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error" })
        {
            psi.ArgumentList.Add(arg);
        }
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException("npm did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new AzuriteNotInstalledException(
                $"Azurite is not installed and npm is not available ({e.Message}). Install Node.js >= 20 with npm, then run `npm ci` in {PackageDirectory}.", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            var output = (await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false));
            if (process.ExitCode != 0 || !IsInstalled)
            {
                throw new AzuriteNotInstalledException(
                    $"`npm ci` in {PackageDirectory} failed (exit code {process.ExitCode}):{Environment.NewLine}{Tail(output, 2000)}");
            }
        }
        log?.WriteLine("Azurite installed.");
    }

    private static string Tail(string s, int chars) => s.Length <= chars ? s : "..." + s[^chars..];
}

/// <summary>Azurite's package is missing (npm ci has not run) or cannot be installed.</summary>
public sealed class AzuriteNotInstalledException : Exception
{
    public AzuriteNotInstalledException(string message) : base(message) { }
    public AzuriteNotInstalledException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A port Azurite was asked to use is taken by another process.</summary>
public sealed class AzuritePortInUseException(int port, string service)
    : Exception($"Cannot start Azurite: port {port} ({service}) on 127.0.0.1 is already in use. Stop what listens there, choose other ports, or point {StorageConnection.ConnectionStringVariable} at a running storage service.")
{
    public int Port { get; } = port;
}

/// <summary>Azurite exited or did not answer in time; the message carries the end of its output.</summary>
public sealed class AzuriteStartException(string message) : Exception(message);
