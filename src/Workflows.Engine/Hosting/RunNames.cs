using System.Text.RegularExpressions;

namespace Workflows.Engine.Hosting;

/// <summary>
/// The names a submission brings that end up in blob names and DTFx ids: the run id (<c>runs/&lt;id&gt;/</c>, the
/// orchestration instance id, GPU job ids) and the experiment name. Both are checked before anything is written, so a
/// hostile name (<c>..</c>, <c>/</c>, <c>%2e%2e</c>, <c>\</c>, control characters) can never leave its prefix. The
/// store validates every blob name again (<see cref="Workflows.Artifacts.Store.ArtifactName"/>); this is the earlier,
/// stricter gate with a message that names the field.
/// </summary>
public static partial class RunNames
{
    /// <summary>Letters, digits, '.', '_' and '-'; starts with a letter or digit (so never '.' or '..'); at most 100.</summary>
    public static string ValidateRunId(string runId) =>
        RunIdPattern().IsMatch(runId) ? runId
            : throw new ArgumentException($"Invalid run id '{Printable(runId)}': use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.", nameof(runId));

    /// <summary>The experiment spec's own rule (lower-case letters, digits and '-', 3-63 characters).</summary>
    public static string ValidateExperimentName(string name) =>
        ExperimentPattern().IsMatch(name) ? name
            : throw new ArgumentException($"Invalid experiment name '{Printable(name)}': use 3-63 lower-case letters, digits and '-', starting and ending with a letter or digit.", nameof(name));

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    private static partial Regex RunIdPattern();

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")]
    private static partial Regex ExperimentPattern();

    private static string Printable(string s) =>
        string.Concat(s.Take(120).Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}
