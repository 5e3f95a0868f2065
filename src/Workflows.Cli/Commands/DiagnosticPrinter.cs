using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

public static class DiagnosticPrinter
{
    /// <summary>One line per error in the compiler format editors and CI annotators understand, hint indented below.</summary>
    public static void Print(CliContext cli, IEnumerable<Diagnostic> diagnostics)
    {
        foreach (var d in diagnostics)
        {
            // File names and messages carry author text: escaped (and cut) here, whatever the message's author did.
            var location = Untrusted.Escape(d.Location.ToString(), Diagnostic.MaxPrintedChars);
            var message = Untrusted.Escape(d.Message, Diagnostic.MaxPrintedChars);
            var hint = d.Hint is null ? null : Untrusted.Escape(d.Hint, Diagnostic.MaxPrintedChars);
            if (cli.Colour)
            {
                cli.Console.MarkupLine($"[bold]{Markup.Escape(location)}[/]: [red]error[/] {d.Code}: {Markup.Escape(message)}");
                if (hint is not null)
                {
                    cli.Console.MarkupLine($"    [grey]hint:[/] {Markup.Escape(hint)}");
                }
            }
            else
            {
                cli.Out.WriteLine($"{location}: error {d.Code}: {message}");
                if (hint is not null)
                {
                    cli.Out.WriteLine($"    hint: {hint}");
                }
            }
        }
    }

    public static JsonObject ToJson(Diagnostic d) => new()
    {
        ["file"] = d.Location.File,
        ["line"] = d.Location.Line,
        ["column"] = d.Location.Column,
        ["code"] = d.Code.ToString(),
        ["path"] = d.Path,
        ["message"] = d.Message,
        ["hint"] = d.Hint,
    };

    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
