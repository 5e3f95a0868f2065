using System.IO.Enumeration;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Paths;

/// <summary>How a path is used: a file, a folder, or either (data and held-out paths name files or folders of them).</summary>
public enum PathUse
{
    File,
    Folder,
    FileOrFolder,
}

/// <summary>Why a path may not be read, and what to do instead. The message never holds the target's content.</summary>
public sealed record PathProblem(string Message, string Hint);

/// <summary>The outcome of <see cref="PathPolicy.Check"/>: the path after every symbolic link, its kind, and a problem or null.</summary>
public sealed record PathCheck(string Resolved, FileKind Kind, PathProblem? Problem)
{
    public bool Exists => Kind != FileKind.Missing;
}

/// <summary>A read the path policy refuses (a domain reader was handed a path it must not open).</summary>
public sealed class UnsafePathException : IOException
{
    public UnsafePathException(string message)
        : base(message)
    {
    }

    public UnsafePathException()
    {
    }

    public UnsafePathException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// The trust boundary for paths, in one place. An experiment file comes from a pull request, and every path it names
/// (<c>data.paths</c>, <c>model.base</c>, a tokenizer file, <c>evaluation.needle.haystack</c>,
/// <c>evaluation.domain_loss.paths</c>) is read by a process that may hold secrets. So, after every symbolic link:
/// <list type="bullet">
/// <item>the path must lie inside one of <see cref="Roots"/>: the experiment's repository (the nearest folder above it
/// holding <c>.git</c>, else <c>workflows/</c>; the experiment's own folder when it is in none) and the folders an operator lists in
/// <c>WF_DATA_ROOTS</c> (separated by ':');</item>
/// <item>only regular files are read, and folders of them: FIFOs (a read blocks forever), character and block devices
/// (<c>/dev/zero</c> never ends), sockets, and anything under <c>/proc</c>, <c>/sys</c> or <c>/dev</c> are refused,
/// whatever the roots;</item>
/// <item>a folder is walked without following links to folders (a link to a file is checked like any path).</item>
/// </list>
/// Validation (<c>wf validate</c>, <c>wf plan</c>, every command that loads an experiment file) reports violations as
/// file:line:column diagnostics (<see cref="PathRules"/>). The domain readers (corpus files, held-out files, haystack,
/// tokenizer model, model folders) check again through <see cref="Current"/> before they open anything, so an engine step
/// is covered wherever it calls them: the kind rules always, containment when the process set a policy with roots
/// (<c>wf worker</c> / <c>wf gpu-agent</c>: <c>WF_DATA_ROOTS</c>, else the working folder, plus their cache).
/// </summary>
public sealed class PathPolicy
{
    public const string RootsVariable = "WF_DATA_ROOTS";

    /// <summary>Never experiment data, whatever an operator configured: virtual and device file systems.</summary>
    public static readonly IReadOnlyList<string> ForbiddenRoots = ["/proc", "/sys", "/dev"];

    private static readonly AsyncLocal<PathPolicy?> Scoped = new();

    public PathPolicy(IEnumerable<string> roots, string? repository = null)
    {
        Roots = roots.Select(r => FileKinds.RealPath(r) ?? Path.GetFullPath(r)).Distinct(StringComparer.Ordinal).ToList();
        Repository = repository is null ? null : FileKinds.RealPath(repository) ?? Path.GetFullPath(repository);
    }

    /// <summary>Folders reads must stay in (canonical). Empty: only the kind rules apply (<see cref="KindsOnly"/>).</summary>
    public IReadOnlyList<string> Roots { get; }

    /// <summary>The experiment's repository (one of <see cref="Roots"/>), for messages; null for a process policy.</summary>
    public string? Repository { get; }

    /// <summary>Only the kind rules (no containment): what a reader applies when no policy with roots is in scope.</summary>
    public static PathPolicy KindsOnly { get; } = new([]);

    /// <summary>The policy of this call chain (<see cref="Use"/>), else <see cref="KindsOnly"/>.</summary>
    public static PathPolicy Current => Scoped.Value ?? KindsOnly;

    /// <summary>Makes <paramref name="policy"/> <see cref="Current"/> for this call chain and what it starts, until disposed.</summary>
    public static IDisposable Use(PathPolicy policy)
    {
        var previous = Scoped.Value;
        Scoped.Value = policy;
        return new Restore(previous);
    }

    /// <summary>The roots of an experiment file: its repository (or folder) and <c>WF_DATA_ROOTS</c>.</summary>
    public static PathPolicy ForExperiment(string experimentFile, Func<string, string?>? env = null)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(experimentFile))!;
        var real = FileKinds.RealPath(folder) ?? folder;
        var repository = RepositoryRootOf(real) ?? real;
        return new PathPolicy([repository, .. DataRoots(env)], repository);
    }

    /// <summary>A worker's roots: <c>WF_DATA_ROOTS</c> (else the working folder) and its own working folders.</summary>
    public static PathPolicy ForWorker(IEnumerable<string> workingFolders, Func<string, string?>? env = null)
    {
        var configured = DataRoots(env);
        return new PathPolicy([.. configured.Count > 0 ? configured : [Directory.GetCurrentDirectory()], .. workingFolders]);
    }

    /// <summary>The folders listed in <c>WF_DATA_ROOTS</c> (':'-separated absolute paths; empty entries ignored).</summary>
    public static IReadOnlyList<string> DataRoots(Func<string, string?>? env = null)
    {
        var value = (env ?? Environment.GetEnvironmentVariable)(RootsVariable);
        return string.IsNullOrWhiteSpace(value)
            ? []
            : value.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(Path.IsPathFullyQualified)
                .ToList();
    }

    /// <summary>
    /// The repository <paramref name="folder"/> belongs to: the nearest folder at or above it that holds <c>.git</c> (a
    /// git working tree, as every CI checkout is); outside any, the nearest that holds <c>workflows/</c> (wf's layout, as
    /// <c>wf init</c> makes it before <c>git init</c>); else null. Only ancestors count, so a folder a pull request
    /// adds can narrow the roots, never widen them.
    /// </summary>
    public static string? RepositoryRootOf(string folder)
    {
        return Nearest(d => Directory.Exists(Path.Combine(d, ".git")) || File.Exists(Path.Combine(d, ".git")))
               ?? Nearest(d => Directory.Exists(Path.Combine(d, "workflows")));

        string? Nearest(Func<string, bool> holds)
        {
            for (var d = Path.GetFullPath(folder); !string.IsNullOrEmpty(d); d = Path.GetDirectoryName(d))
            {
                if (holds(d))
                {
                    return d;
                }
            }

            return null;
        }
    }

    /// <summary>
    /// Checks one path for <paramref name="use"/>. A path that does not exist is not a problem here (the caller decides);
    /// its containment is judged where it would resolve.
    /// </summary>
    public PathCheck Check(string path, PathUse use)
    {
        var lexical = Path.GetFullPath(path);
        var real = FileKinds.RealPath(lexical);
        var resolved = real ?? FileKinds.ResolveExisting(lexical);
        var kind = real is null ? FileKind.Missing : FileKinds.Of(real);
        var viaLink = !string.Equals(resolved, lexical, StringComparison.Ordinal);

        if (ForbiddenRoots.FirstOrDefault(f => IsUnder(resolved, f)) is { } forbidden)
        {
            return new PathCheck(resolved, kind, new PathProblem(
                $"{(viaLink ? "resolves (through a symbolic link) to a path" : "is")} under {forbidden}, a virtual or device file system: never experiment data",
                "name regular files inside the repository"));
        }

        if (kind is FileKind.Fifo or FileKind.CharacterDevice or FileKind.BlockDevice or FileKind.Socket)
        {
            return new PathCheck(resolved, kind, new PathProblem(
                $"{(viaLink ? "resolves (through a symbolic link) to" : "is")} {Describe(kind)}: only regular files (and folders of them) are read",
                "name regular files inside the repository"));
        }

        if (Roots.Count > 0 && !Roots.Any(r => IsUnder(resolved, r)))
        {
            return new PathCheck(resolved, kind, new PathProblem(
                $"{(viaLink ? "resolves (through a symbolic link) to a place" : "is")} outside {DescribeRoots()}",
                $"keep data inside the repository, or have the operator add its folder to {RootsVariable} (':'-separated absolute paths)"));
        }

        if (use == PathUse.File && kind == FileKind.Directory)
        {
            return new PathCheck(resolved, kind, new PathProblem("is a folder; a file is expected here", "name the file itself"));
        }

        if (use == PathUse.Folder && kind is FileKind.Regular or FileKind.Unknown)
        {
            return new PathCheck(resolved, kind, new PathProblem("is a file; a folder is expected here", "name the folder that holds the files"));
        }

        return new PathCheck(resolved, kind, null);
    }

    /// <summary>
    /// The regular files of <paramref name="folder"/> whose names match <paramref name="pattern"/> (e.g. <c>*.txt</c>),
    /// as paths under <paramref name="folder"/>, each checked: a link to a file outside the roots, a FIFO or a device
    /// among them throws <see cref="UnsafePathException"/>. Links to folders are never followed (a link loop cannot
    /// run forever, and a link cannot pull a folder from outside into the walk); one that matches is refused.
    /// </summary>
    public IEnumerable<string> EnumerateFiles(string folder, string pattern = "*", bool recursive = true)
    {
        RequireFolder(folder);
        foreach (var path in ListEntries(folder, pattern, recursive))
        {
            var check = Check(path, PathUse.File);
            if (check.Problem is { } problem)
            {
                throw new UnsafePathException($"{Show(path)} {problem.Message}");
            }

            if (check.Kind == FileKind.Directory)
            {
                throw new UnsafePathException($"{Show(path)} is a symbolic link to a folder, which is not followed inside a folder of inputs: name the folder itself");
            }

            if (check.Exists)
            {
                yield return path;
            }
        }
    }

    /// <summary>
    /// Every entry of <paramref name="folder"/> that is not a folder (files, links, FIFOs, ...) and matches
    /// <paramref name="pattern"/>, sorted, without following links to folders and without checking anything: for callers
    /// that check each entry themselves (<see cref="EnumerateFiles"/>, <c>wf validate FOLDER</c>).
    /// </summary>
    public static IEnumerable<string> ListEntries(string folder, string pattern = "*", bool recursive = true)
    {
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = recursive,
            AttributesToSkip = 0,
            IgnoreInaccessible = false,
            ReturnSpecialDirectories = false,
        };
        var entries = new FileSystemEnumerable<string>(Path.GetFullPath(folder), (ref FileSystemEntry e) => e.ToFullPath(), options)
        {
            ShouldIncludePredicate = (ref FileSystemEntry e) =>
                (!e.IsDirectory || (e.Attributes & FileAttributes.ReparsePoint) != 0) && FileSystemName.MatchesSimpleExpression(pattern, e.FileName),
            ShouldRecursePredicate = (ref FileSystemEntry e) => (e.Attributes & FileAttributes.ReparsePoint) == 0,
        };
        return entries.Order(StringComparer.Ordinal);
    }

    /// <summary>Throws <see cref="UnsafePathException"/> (or <see cref="FileNotFoundException"/>) unless <paramref name="path"/> is a readable regular file; returns its real path.</summary>
    public string RequireFile(string path) => Require(path, PathUse.File);

    /// <summary>As <see cref="RequireFile"/>, for a folder.</summary>
    public string RequireFolder(string path) => Require(path, PathUse.Folder);

    /// <summary>Opens a regular file for reading after the checks (never a FIFO, which would block the open itself).</summary>
    public FileStream OpenRead(string path, int bufferSize = 4096, FileOptions options = FileOptions.None) =>
        new(RequireFile(path), FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize, options);

    /// <summary>The whole file, refused when it is larger than <paramref name="maxBytes"/> (a size limit, not a truncation).</summary>
    public byte[] ReadAllBytes(string path, long maxBytes)
    {
        using var stream = OpenRead(path);
        if (stream.Length > maxBytes)
        {
            throw new UnsafePathException($"{Show(path)} is {stream.Length:N0} bytes; the limit for this file is {maxBytes:N0} bytes");
        }

        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>
    /// An experiment (or workflow template) file itself: a regular file reached without any symbolic link below its
    /// repository, so a pull request cannot commit a link that makes <c>wf validate</c> print another file. Returns the
    /// problem, or null.
    /// </summary>
    public static string? CheckSourceFile(string path)
    {
        var lexical = Path.GetFullPath(path);
        if (ForbiddenRoots.FirstOrDefault(f => IsUnder(FileKinds.ResolveExisting(lexical), f)) is { } forbidden)
        {
            return $"is under {forbidden}, a virtual or device file system";
        }

        switch (FileKinds.Of(lexical, followLinks: false))
        {
            case FileKind.Missing:
                return null; // the reader reports "file not found"
            case FileKind.SymbolicLink:
                return "is a symbolic link: experiment and workflow files must be regular files (a link would make wf read and print another file)";
            case FileKind.Regular or FileKind.Unknown:
                break;
            case var other:
                return $"is {Describe(other)}, not a regular file";
        }

        // No link in the folders between the repository and the file (a linked folder is another way to point elsewhere).
        var folder = Path.GetDirectoryName(lexical)!;
        var repository = RepositoryRootOf(folder) ?? folder;
        var realRepository = FileKinds.RealPath(repository) ?? repository;
        var expected = Path.Combine(realRepository, Path.GetRelativePath(repository, lexical));
        var real = FileKinds.RealPath(lexical);
        return real is null || string.Equals(real, expected, StringComparison.Ordinal)
            ? null
            : "is reached through a symbolically linked folder: experiment and workflow files must be regular files inside the repository";
    }

    private string Require(string path, PathUse use)
    {
        var check = Check(path, use);
        if (check.Problem is { } problem)
        {
            throw new UnsafePathException($"{Show(path)} {problem.Message} ({problem.Hint})");
        }

        if (!check.Exists)
        {
            throw use == PathUse.Folder
                ? new DirectoryNotFoundException($"{Show(path)} does not exist")
                : new FileNotFoundException($"{Show(path)} does not exist", path);
        }

        return check.Resolved;
    }

    private string DescribeRoots()
    {
        var others = Roots.Where(r => r != Repository).ToList();
        var repository = Repository is null ? null : $"the repository ({Repository})";
        var configured = others.Count == 0 ? null : $"{string.Join(", ", others)} ({RootsVariable} and working folders)";
        return string.Join(" and ", new[] { repository, configured }.Where(s => s is not null));
    }

    /// <summary>A path in a message: escaped and cut (a path can hold any character but '/' and NUL).</summary>
    public static string Show(string path) => $"'{Untrusted.Escape(path, 240)}'";

    private static string Describe(FileKind kind) => kind switch
    {
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.Directory => "a folder",
        _ => "not a regular file",
    };

    private static bool IsUnder(string path, string root) =>
        string.Equals(path, root, StringComparison.Ordinal)
        || path.StartsWith(root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private sealed class Restore(PathPolicy? previous) : IDisposable
    {
        public void Dispose() => Scoped.Value = previous;
    }
}
