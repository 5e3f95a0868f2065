using Spectre.Console;

namespace Workflows.Cli.Commands;

/// <summary>
/// Where a command writes. Colour and live widgets only when stdout is a terminal (and NO_COLOR is unset), so
/// pipes, CI logs and --json output stay plain.
/// </summary>
/// <remarks>
/// Plain output (stderr always, stdout unless it is a colour terminal, where Spectre writes its own escape codes) goes
/// through <see cref="EscapingWriter"/>: no control character from a pull request reaches a terminal or a CI log raw.
/// </remarks>
public sealed class CliContext(TextWriter stdout, TextWriter stderr, bool colour)
{
    public TextWriter Out { get; } = colour ? stdout : new EscapingWriter(stdout);
    public TextWriter Err { get; } = new EscapingWriter(stderr);

    public IAnsiConsole Console { get; } = CreateConsole(colour ? stdout : new EscapingWriter(stdout), colour);

    private static IAnsiConsole CreateConsole(TextWriter stdout, bool colour)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stdout),
            Ansi = colour ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = colour ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = colour ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!colour)
        {
            // Logs and pipes have no width; 80 columns would wrap every table.
            console.Profile.Width = 160;
        }

        return console;
    }

    public bool Colour { get; } = colour;

    public static CliContext ForProcess() => new(
        System.Console.Out,
        System.Console.Error,
        colour: !System.Console.IsOutputRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR")));
}

/// <summary>Exit codes scripts can rely on.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int InvalidInput = 1;
    public const int Usage = 2;
}
