namespace Workflows.Artifacts;

/// <summary>
/// Per-user folders for what wf keeps outside any repository: the Azurite it installs on first use (data) and
/// measured corpus statistics (cache). <c>WF_HOME</c> moves both (CI and tests point it at a temporary folder).
/// </summary>
public static class UserFolders
{
    public const string HomeVariable = "WF_HOME";

    /// <summary><c>$WF_HOME</c>, else <c>$XDG_DATA_HOME/wf</c>, else <c>~/.local/share/wf</c> (Windows: %LOCALAPPDATA%\wf).</summary>
    public static string Data(Func<string, string?>? environment = null) =>
        Home(environment) ?? Path.Combine(Xdg(environment, "XDG_DATA_HOME", Path.Combine(".local", "share")), "wf");

    /// <summary><c>$WF_HOME/cache</c>, else <c>$XDG_CACHE_HOME/wf</c>, else <c>~/.cache/wf</c>.</summary>
    public static string Cache(Func<string, string?>? environment = null) =>
        Home(environment) is { } home ? Path.Combine(home, "cache") : Path.Combine(Xdg(environment, "XDG_CACHE_HOME", ".cache"), "wf");

    private static string? Home(Func<string, string?>? environment) =>
        (environment ?? Environment.GetEnvironmentVariable)(HomeVariable) is { Length: > 0 } home ? Path.GetFullPath(home) : null;

    private static string Xdg(Func<string, string?>? environment, string variable, string fallbackUnderHome)
    {
        if (OperatingSystem.IsWindows())
        {
            return Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData);
        }

        var value = (environment ?? Environment.GetEnvironmentVariable)(variable);
        return value is { Length: > 0 } && Path.IsPathRooted(value)
            ? value
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), fallbackUnderHome);
    }
}
