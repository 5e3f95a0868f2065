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

    /// <summary>The pinned version (infra/azurite/package.json); the per-user copy lives in a folder named after it.</summary>
    public const string PinnedVersion = "3.37.0";

    /// <summary>
    /// True for the per-user copy (<see cref="PerUser"/>): wf installs it itself on first use. A repository's
    /// infra/azurite is installed by <c>npm ci</c> there (scripts/azurite.sh, the tests), as before.
    /// </summary>
    public bool InstallsOnFirstUse { get; init; }

    /// <summary>Program names (tests point them at missing programs to see the message a machine without Node.js gets).</summary>
    public string NodeCommand { get; init; } = "node";

    public string NpmCommand { get; init; } = "npm";

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
        return PerUser();
    }

    /// <summary>
    /// Outside the wf repository: the pinned package in a per-user folder (<c>$WF_HOME</c> or
    /// <c>~/.local/share/wf</c>/azurite/VERSION), its package.json and lock written from the ones wf carries, installed
    /// with npm on first use.
    /// </summary>
    public static AzuriteInstallation PerUser(string? dataFolder = null)
    {
        var folder = Path.Combine(dataFolder ?? UserFolders.Data(), "azurite", PinnedVersion);
        Directory.CreateDirectory(folder);
        foreach (var name in new[] { "package.json", "package-lock.json" })
        {
            using var resource = typeof(AzuriteInstallation).Assembly.GetManifestResourceStream("azurite/" + name)
                ?? throw new InvalidOperationException($"wf was built without its Azurite {name}");
            using var memory = new MemoryStream();
            resource.CopyTo(memory);
            var path = Path.Combine(folder, name);
            if (!File.Exists(path) || !File.ReadAllBytes(path).AsSpan().SequenceEqual(memory.ToArray()))
            {
                File.WriteAllBytes(path, memory.ToArray());
            }
        }

        return new AzuriteInstallation(folder) { InstallsOnFirstUse = true };
    }

    /// <summary>
    /// Runs <c>npm ci</c> in the package directory (about half a minute, ~360 MB of node_modules). Two wf processes
    /// installing at once take turns on a lock file; the second finds the package installed.
    /// </summary>
    public async Task InstallAsync(TextWriter? log = null, CancellationToken cancellationToken = default)
    {
        await using var installLock = await LockAsync(cancellationToken).ConfigureAwait(false);
        if (IsInstalled)
        {
            return;
        }

        if (!CanRun(NodeCommand))
        {
            throw new AzuriteNotInstalledException(
                $"wf's local storage is the Azure Storage emulator (Azurite {PinnedVersion}), which runs on Node.js, and `{NodeCommand}` is not on PATH. Install Node.js >= 20 with npm (e.g. `apt-get install nodejs npm`, or from nodejs.org) and run wf again, or point {StorageConnection.ConnectionStringVariable} at an Azure Storage account.");
        }

        log?.WriteLine($"Installing the pinned Azurite {PinnedVersion} (first use): npm ci in {PackageDirectory} ...");
        var psi = new ProcessStartInfo(NpmCommand)
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
                $"Azurite is not installed and npm is not available ({e.Message}). Install Node.js >= 20 with npm and run wf again (it installs Azurite into {PackageDirectory}), or point {StorageConnection.ConnectionStringVariable} at an Azure Storage account.", e);
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

    /// <summary>True when <paramref name="program"/> starts (its --version exits 0).</summary>
    private static bool CanRun(string program)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(program, "--version") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false });
            if (p is null)
            {
                return false;
            }

            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private async Task<FileStream> LockAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(PackageDirectory);
        var path = Path.Combine(PackageDirectory, ".install.lock");
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException) when (attempt < 1200)
            {
                await Task.Delay(500, cancellationToken).ConfigureAwait(false); // another wf is installing (npm ci takes ~30 s)
            }
        }
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
