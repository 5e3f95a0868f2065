using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Archive;

/// <summary>One archived file a pull request touches, and what to do instead.</summary>
public sealed record ArchiveViolation(string Path, string Experiment, string Change, string Message);

/// <summary>
/// Archived experiments are immutable: their file is the record of what ran, and <c>wf rerun</c> depends on it.
/// A pull request may not modify, delete or rename (move away) an archived file, and may not add a file that
/// reuses an archived experiment's name. The fix is always the same: copy the file under a new name.
/// </summary>
public static class ArchiveImmutability
{
    /// <param name="changed">The PR's files, from GET /repos/{o}/{r}/pulls/{n}/files.</param>
    /// <param name="archive">Every archived experiment.</param>
    /// <param name="namesOfChangedFiles">The <c>name:</c> of each added, copied, renamed or modified experiment file that parsed
    /// (path → name), read from the pull request's head: a file anywhere under experiments/ (experiments/sub/x.yaml) that
    /// takes an archived experiment's name is caught, whatever its own file name.</param>
    public static IReadOnlyList<ArchiveViolation> Check(
        IEnumerable<ChangedFile> changed,
        IReadOnlyCollection<ArchivedExperiment> archive,
        IReadOnlyDictionary<string, string>? namesOfChangedFiles = null)
    {
        var byPath = archive.GroupBy(a => Normalise(a.Path)).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var byName = archive.GroupBy(a => a.Name).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var violations = new List<ArchiveViolation>();
        foreach (var file in changed)
        {
            var path = Normalise(file.Path);
            switch (file.Status)
            {
                case "modified" or "changed" or "removed" when byPath.TryGetValue(path, out var hit):
                    violations.Add(Violation(path, hit, file.Status == "removed" ? "deleted" : "edited"));
                    break;
                case "renamed" when file.PreviousPath is { } previous && byPath.TryGetValue(Normalise(previous), out var moved):
                    violations.Add(Violation(Normalise(previous), moved, $"renamed to {path}"));
                    break;
                case "added" or "copied" or "renamed" or "modified" or "changed"
                    when namesOfChangedFiles?.TryGetValue(file.Path, out var name) == true && byName.TryGetValue(name, out var taken)
                         && Normalise(taken.Path) != path:
                    violations.Add(new ArchiveViolation(path, taken.Name, "reuses an archived name",
                        $"{path}: name '{taken.Name}' belongs to the archived experiment {taken.Path} ({Runs(taken)}); give the new experiment a new name (and a file named after it)."));
                    break;
            }
        }

        return violations;
    }

    /// <summary>The check's text for the job log and the PR comment; empty when nothing is violated.</summary>
    public static string Describe(IReadOnlyList<ArchiveViolation> violations) =>
        violations.Count == 0
            ? ""
            : $"{violations.Count} archived experiment file(s) changed; archived experiments are immutable:\n"
              + string.Join("\n", violations.Select(v => "- " + v.Message)) + "\n";

    private static ArchiveViolation Violation(string path, ArchivedExperiment a, string change)
    {
        var suggestion = SuggestCopy(a);
        return new ArchiveViolation(path, a.Name, change,
            $"{path} is archived (experiment '{a.Name}', {Runs(a)}) and cannot be {change}: copy it under a new name instead, e.g. {suggestion.Path} with name: {suggestion.Name}, change the copy, and leave {path} as it is.");
    }

    private static (string Path, string Name) SuggestCopy(ArchivedExperiment a)
    {
        var folder = Path.GetDirectoryName(a.Path)?.Replace('\\', '/');
        // per-source-5b-80k → per-source-5b-80k-v2; per-source-5b-80k-v2 → per-source-5b-80k-v3
        var m = System.Text.RegularExpressions.Regex.Match(a.Name, @"^(.*)-v(\d+)$");
        var name = m.Success ? $"{m.Groups[1].Value}-v{int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) + 1}" : $"{a.Name}-v2";
        return (string.IsNullOrEmpty(folder) ? $"{name}.yaml" : $"{folder}/{name}.yaml", name);
    }

    private static string Runs(ArchivedExperiment a) =>
        a.Runs.Count switch
        {
            0 => "no runs yet",
            1 => $"run {a.Runs[0]}",
            _ => $"runs {string.Join(", ", a.Runs)}",
        };

    private static string Normalise(string path)
    {
        path = path.Replace('\\', '/');
        while (path.StartsWith("./", StringComparison.Ordinal))
        {
            path = path[2..];
        }

        return path.TrimStart('/');
    }
}
