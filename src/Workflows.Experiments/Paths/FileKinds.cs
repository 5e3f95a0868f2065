using System.Runtime.InteropServices;

namespace Workflows.Experiments.Paths;

/// <summary>What a path is, as the operating system says (.NET reports FIFOs, sockets and devices as ordinary files).</summary>
public enum FileKind
{
    Missing,
    Regular,
    Directory,
    SymbolicLink,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,

    /// <summary>The platform cannot tell (not Linux): treated as regular when .NET sees a file.</summary>
    Unknown,
}

/// <summary>
/// The two system calls the path policy needs and .NET does not offer: the file type (<c>statx</c>, whose layout is
/// the same on every Linux architecture) and the canonical path after every symbolic link (<c>realpath</c>, POSIX).
/// </summary>
public static partial class FileKinds
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const int StatxModeOffset = 28;
    private const int StatxSize = 256;

    private static bool statxMissing;

    /// <summary>The kind of <paramref name="path"/>; with <paramref name="followLinks"/> false a link is reported as one.</summary>
    public static FileKind Of(string path, bool followLinks = true)
    {
        if (!statxMissing && OperatingSystem.IsLinux())
        {
            try
            {
                var buffer = new byte[StatxSize];
                if (Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType, buffer) != 0)
                {
                    return FileKind.Missing; // ENOENT, ENOTDIR, ELOOP, EACCES: nothing this process can read
                }

                var mode = BitConverter.ToUInt16(buffer, StatxModeOffset);
                return (mode & 0xF000) switch
                {
                    0x8000 => FileKind.Regular,
                    0x4000 => FileKind.Directory,
                    0xA000 => FileKind.SymbolicLink,
                    0x1000 => FileKind.Fifo,
                    0x2000 => FileKind.CharacterDevice,
                    0x6000 => FileKind.BlockDevice,
                    0xC000 => FileKind.Socket,
                    _ => FileKind.Unknown,
                };
            }
            catch (EntryPointNotFoundException)
            {
                statxMissing = true; // glibc before 2.28
            }
        }

        if (!followLinks && new FileInfo(path) is { Exists: true, LinkTarget: not null })
        {
            return FileKind.SymbolicLink;
        }

        return Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Unknown : FileKind.Missing;
    }

    /// <summary>
    /// The absolute path with every symbolic link resolved, or null when it does not exist. A path that does not exist
    /// yet is resolved through its longest existing ancestor (see <see cref="ResolveExisting"/>).
    /// </summary>
    public static string? RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        if (OperatingSystem.IsWindows())
        {
            return File.Exists(full) || Directory.Exists(full) ? ManagedRealPath(full) : null;
        }

        var resolved = RealPathNative(full, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Free(resolved);
        }
    }

    /// <summary>
    /// The canonical form of <paramref name="path"/> even when it does not exist: its longest existing ancestor resolved,
    /// the missing rest appended as written. A missing file below a symbolic link still resolves to where it would be.
    /// </summary>
    public static string ResolveExisting(string path)
    {
        var full = Path.GetFullPath(path);
        var rest = new Stack<string>();
        var current = full;
        while (true)
        {
            if (RealPath(current) is { } real)
            {
                return rest.Aggregate(real, Path.Combine);
            }

            var parent = Path.GetDirectoryName(current);
            if (parent is null)
            {
                return full;
            }

            rest.Push(Path.GetFileName(current));
            current = parent;
        }
    }

    private static string ManagedRealPath(string full)
    {
        FileSystemInfo info = Directory.Exists(full) ? new DirectoryInfo(full) : new FileInfo(full);
        return info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directoryFd, string path, int flags, uint mask, [Out] byte[] buffer);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr RealPathNative(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(IntPtr pointer);
}
