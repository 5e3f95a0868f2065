using System.Diagnostics;
using System.Globalization;

namespace Workflows.Artifacts.Azurite;

/// <summary>The marker of a running local Azurite: its process and ports (<c>azurite.pid</c>, <c>azurite.ports</c>).</summary>
public sealed record LocalAzuriteMarker(int Pid, int BlobPort, int QueuePort, int TablePort);

/// <summary>
/// One store's local Azurite: its folder (<c>&lt;work&gt;/azurite</c>) holds the data (<c>data/</c>) and, while one runs,
/// the marker files scripts/azurite.sh also writes. A running Azurite belongs to this store only when the marker's
/// process is alive, its command line names this store's data folder (so a recycled pid is not mistaken for it) and
/// its blob port answers as Azurite. That is what <see cref="StorageSession"/> adopts; anything else listening on
/// the usual ports is someone else's.
/// </summary>
public sealed class LocalAzurite
{
    private const string PidFile = "azurite.pid";
    private const string PortsFile = "azurite.ports";

    private LocalAzurite(string directory)
    {
        Directory = directory;
        // wf before this layout kept Azurite's databases directly in the folder; keep reading them there.
        var legacy = File.Exists(Path.Combine(directory, "__azurite_db_blob__.json")) && !System.IO.Directory.Exists(Path.Combine(directory, "data"));
        DataDirectory = legacy ? directory : Path.Combine(directory, "data");
    }

    /// <summary><c>&lt;work&gt;/azurite</c>: marker files and the data folder.</summary>
    public string Directory { get; }

    /// <summary>What Azurite runs with as <c>--location</c>.</summary>
    public string DataDirectory { get; }

    /// <param name="path">wf's work directory (<c>.wf</c>), or with <paramref name="isAzuriteDirectory"/> its azurite folder.</param>
    public static LocalAzurite At(string path, bool isAzuriteDirectory = false) =>
        new(Path.GetFullPath(isAzuriteDirectory ? path : Path.Combine(path, "azurite")));

    /// <summary>
    /// <c>.wf</c> in the nearest folder at or above <paramref name="start"/> that already has a <c>.wf/</c> or is an
    /// experiments repository (has <c>workflows/</c>), else in <paramref name="start"/>: one store per checkout, whichever
    /// subfolder wf runs in.
    /// </summary>
    public static string DefaultWorkDirectory(string start)
    {
        for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = dir.Parent)
        {
            if (System.IO.Directory.Exists(Path.Combine(dir.FullName, ".wf")) || System.IO.Directory.Exists(Path.Combine(dir.FullName, "workflows")))
            {
                return Path.Combine(dir.FullName, ".wf");
            }
        }

        return Path.Combine(Path.GetFullPath(start), ".wf");
    }

    public LocalAzuriteMarker? ReadMarker()
    {
        try
        {
            var pid = File.ReadAllText(Path.Combine(Directory, PidFile)).Trim();
            var ports = File.ReadAllText(Path.Combine(Directory, PortsFile)).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return ports.Length == 3 && int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var p)
                && int.TryParse(ports[0], NumberStyles.None, CultureInfo.InvariantCulture, out var b)
                && int.TryParse(ports[1], NumberStyles.None, CultureInfo.InvariantCulture, out var q)
                && int.TryParse(ports[2], NumberStyles.None, CultureInfo.InvariantCulture, out var t)
                ? new LocalAzuriteMarker(p, b, q, t)
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The marker, when the Azurite it names is running for this store's data and answers on its blob port.</summary>
    public async Task<LocalAzuriteMarker?> RunningAsync(CancellationToken cancellationToken = default)
    {
        if (ReadMarker() is not { } marker || !ServesThisStore(marker.Pid))
        {
            return null;
        }

        return await StorageSession.IsAzuriteListeningAsync(marker.BlobPort, cancellationToken).ConfigureAwait(false) ? marker : null;
    }

    public void WriteMarker(LocalAzuriteMarker marker)
    {
        System.IO.Directory.CreateDirectory(Directory);
        File.WriteAllText(Path.Combine(Directory, PortsFile), $"{marker.BlobPort} {marker.QueuePort} {marker.TablePort}\n");
        File.WriteAllText(Path.Combine(Directory, PidFile), marker.Pid.ToString(CultureInfo.InvariantCulture) + "\n");
    }

    /// <summary>Removes the marker (only when it still names <paramref name="onlyPid"/>, if given).</summary>
    public void DeleteMarker(int? onlyPid = null)
    {
        if (!System.IO.Directory.Exists(Directory) || (onlyPid is { } pid && ReadMarker() is { } marker && marker.Pid != pid))
        {
            return;
        }

        File.Delete(Path.Combine(Directory, PidFile));
        File.Delete(Path.Combine(Directory, PortsFile));
    }

    /// <summary>True when process <paramref name="pid"/> is alive and was started with this store's data folder as <c>--location</c>.</summary>
    public bool ServesThisStore(int pid)
    {
        var commandLine = CommandLine(pid);
        if (commandLine is null)
        {
            return false;
        }

        var data = Path.TrimEndingDirectorySeparator(DataDirectory);
        var args = commandLine.Split('\0', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i + 1 < args.Length; i++)
        {
            if (args[i] == "--location" && Path.TrimEndingDirectorySeparator(args[i + 1]) == data)
            {
                return true;
            }
        }

        // ps (no /proc) joins arguments with spaces.
        return args.Length == 1 && commandLine.Contains("--location " + data, StringComparison.Ordinal);
    }

    private static string? CommandLine(int pid)
    {
        if (pid <= 0)
        {
            return null;
        }

        var proc = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline";
        if (File.Exists(proc))
        {
            try
            {
                return File.ReadAllText(proc);
            }
            catch (IOException)
            {
                return null; // it exited meanwhile
            }
        }

        if (OperatingSystem.IsWindows() || System.IO.Directory.Exists("/proc/self"))
        {
            return null; // no such process (or Windows, where wf's local default is not supported by the scripts either)
        }

        try
        {
            using var ps = Process.Start(new ProcessStartInfo("ps", $"-o command= -p {pid.ToString(CultureInfo.InvariantCulture)}")
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            });
            var output = ps?.StandardOutput.ReadToEnd().Trim();
            ps?.WaitForExit();
            return string.IsNullOrEmpty(output) ? null : output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
