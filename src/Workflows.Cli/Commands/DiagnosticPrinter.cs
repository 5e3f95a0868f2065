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
            if (cli.Colour)
            {
                cli.Console.MarkupLine($"[bold]{Markup.Escape(d.Location.ToString())}[/]: [red]error[/] {d.Code}: {Markup.Escape(d.Message)}");
                if (d.Hint is not null)
                {
                    cli.Console.MarkupLine($"    [grey]hint:[/] {Markup.Escape(d.Hint)}");
                }
            }
            else
            {
                cli.Out.WriteLine($"{d.Location}: error {d.Code}: {d.Message}");
                if (d.Hint is not null)
                {
                    cli.Out.WriteLine($"    hint: {d.Hint}");
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
