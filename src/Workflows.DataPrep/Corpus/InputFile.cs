using Workflows.Experiments.Paths;
using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Corpus;

/// <summary>
/// An input file and the key that names it in plans, length indexes and manifests. The key, not the path, feeds
/// every per-document hash, so the same corpus laid out under another root on another machine selects the same
/// documents.
/// </summary>
public sealed record InputFile(string Path, string Key)
{
    /// <summary>
    /// Keys every path by its path relative to the deepest folder common to all of them ('/' separated), so that
    /// SlimPajama's repeated file names (chunk1/example_train_0, chunk2/example_train_0) stay distinct.
    /// Returns the files sorted by key.
    /// </summary>
    public static IReadOnlyList<InputFile> FromPaths(IEnumerable<string> paths)
    {
        var full = paths.Select(p => System.IO.Path.GetFullPath(p)).Distinct(StringComparer.Ordinal).ToList();
        if (full.Count == 0)
        {
            throw new ArgumentException("No input files were given.", nameof(paths));
        }

        var root = CommonDirectory(full);
        var files = full
            .Select(p => new InputFile(p, System.IO.Path.GetRelativePath(root, p).Replace('\\', '/')))
            .OrderBy(f => f.Key, StringComparer.Ordinal)
            .ToList();
        return files;
    }

    /// <summary>
    /// Expands folders into the corpus files they hold (recursively, links to folders not followed), leaving files as
    /// they are. Every path goes through the path policy (<see cref="PathPolicy.Current"/>): a FIFO, a device, a link
    /// out of the allowed roots throws <see cref="UnsafePathException"/>; a file that does not exist is left for the
    /// reader to report.
    /// </summary>
    public static IReadOnlyList<InputFile> Discover(IEnumerable<string> pathsOrFolders)
    {
        var policy = PathPolicy.Current;
        var paths = new List<string>();
        foreach (var p in pathsOrFolders)
        {
            var check = policy.Check(p, PathUse.FileOrFolder);
            if (check.Problem is { } problem)
            {
                throw new UnsafePathException($"{PathPolicy.Show(p)} {problem.Message} ({problem.Hint})");
            }

            if (check.Kind == FileKind.Directory)
            {
                var found = policy.EnumerateFiles(p).Where(f => CorpusFormats.Detect(f) is not null).ToList();
                if (found.Count == 0)
                {
                    throw new ArgumentException($"{PathPolicy.Show(p)} holds no corpus files (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)", nameof(pathsOrFolders));
                }

                paths.AddRange(found);
            }
            else
            {
                paths.Add(p);
            }
        }

        return FromPaths(paths);
    }

    private static string CommonDirectory(IReadOnlyList<string> fullPaths)
    {
        var dirs = fullPaths.Select(p => System.IO.Path.GetDirectoryName(p) ?? "/").ToList();
        var common = dirs[0];
        foreach (var d in dirs.Skip(1))
        {
            while (!IsSameOrUnder(d, common))
            {
                common = System.IO.Path.GetDirectoryName(common) ?? "/";
            }
        }

        return common;
    }

    private static bool IsSameOrUnder(string dir, string root) =>
        dir.Equals(root, StringComparison.Ordinal)
        || dir.StartsWith(root.EndsWith('/') ? root : root + "/", StringComparison.Ordinal);
}
