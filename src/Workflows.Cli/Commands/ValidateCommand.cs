using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

public static class ValidateCommand
{
    public static Command Create(CliContext cli)
    {
        var paths = new Argument<string[]>("paths")
        {
            Description = "Experiment files (.yaml) or folders of them. Files in a folder named 'workflows' are checked as workflow templates.",
            Arity = ArgumentArity.OneOrMore,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with every file's result instead of text." };
        var policy = new Option<PolicyMode>("--policy")
        {
            Description = "auto: apply the repository policy (0.5B-10B tokens, 64K/80K context) to files under an experiments/ folder; enforce: to every file; off: never.",
            DefaultValueFactory = _ => PolicyMode.Auto,
        };
        var command = new Command("validate", """
            Check experiment files: YAML syntax, keys, types, ranges, source names, mix weights, the repository policy.
            Every error of every file is printed as FILE:LINE:COLUMN with a hint. Exit code 0 when all files are
            valid, 1 when any is not.

            Examples:
              wf validate experiments/per-source-5b-80k.yaml
              wf validate experiments/            # every .yaml in the folder
              wf validate --json experiments/*.yaml
            """)
        {
            paths, json, policy,
        };
        command.SetAction(parse => Run(cli, parse.GetValue(paths)!, parse.GetValue(json), parse.GetValue(policy)));
        return command;
    }

    public static IReadOnlyList<string> ExpandPaths(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                // Links to folders are not followed (a link loop, or a link out of the repository); a linked file is
                // listed and then refused by the reader with its name.
                files.AddRange(PathPolicy.ListEntries(path, "*.yaml").Concat(PathPolicy.ListEntries(path, "*.yml"))
                    .Select(f => Path.Combine(path, Path.GetRelativePath(Path.GetFullPath(path), f)))
                    .Order(StringComparer.Ordinal));
            }
            else
            {
                files.Add(path);
            }
        }

        return files;
    }

    private static int Run(CliContext cli, string[] paths, bool json, PolicyMode policy)
    {
        var watch = Stopwatch.StartNew();
        var files = ExpandPaths(paths);
        var results = new List<(string File, string Kind, string? Hash, IReadOnlyList<Diagnostic> Diagnostics, IReadOnlyList<SweepVariant>? Variants)>();
        string? workflows = null;
        foreach (var file in files)
        {
            if (RepositoryLayout.IsWorkflowTemplate(file))
            {
                var template = TemplateLoader.LoadFile(file);
                results.Add((file, "workflow", null, template.Diagnostics, null));
                continue;
            }

            workflows ??= RepositoryLayout.FindWorkflowsDirectory(file);
            // A sweep file (matrix:) is every variant, each validated and policed on its own.
            var loaded = SweepLoader.LoadFile(file, new LoadOptions(policy, workflows));
            results.Add(loaded.IsMatrix
                ? (file, "sweep", null, loaded.Diagnostics, loaded.Variants)
                : (file, "experiment", loaded.IsValid ? loaded.Variants[0].ContentHash : null, loaded.Diagnostics, null));
        }

        var invalid = results.Count(r => r.Diagnostics.Count > 0);
        if (json)
        {
            var array = new JsonArray();
            foreach (var r in results)
            {
                var errors = new JsonArray();
                foreach (var d in r.Diagnostics)
                {
                    errors.Add(DiagnosticPrinter.ToJson(d));
                }

                var entry = new JsonObject
                {
                    ["file"] = r.File,
                    ["kind"] = r.Kind,
                    ["valid"] = r.Diagnostics.Count == 0,
                    ["content_hash"] = r.Hash,
                    ["errors"] = errors,
                };
                if (r.Variants is not null)
                {
                    entry["variants"] = Workflows.Cli.Sweeps.SweepCli.VariantsJson(r.Variants);
                }

                array.Add(entry);
            }

            cli.Out.WriteLine(new JsonObject { ["files"] = array, ["valid"] = invalid == 0 }.ToJsonString(DiagnosticPrinter.Indented));
        }
        else
        {
            foreach (var r in results)
            {
                if (r.Diagnostics.Count == 0)
                {
                    var what = r.Variants is { } v ? $"sweep of {v.Count} variant(s)" : r.Hash is null ? r.Kind : $"{r.Kind} {r.Hash[..12]}";
                    if (cli.Colour)
                    {
                        cli.Console.MarkupLine($"[green]ok[/]  {Markup.Escape(r.File)} [grey]({what})[/]");
                    }
                    else
                    {
                        cli.Out.WriteLine($"ok  {r.File} ({what})");
                    }

                    foreach (var variant in r.Variants ?? [])
                    {
                        cli.Out.WriteLine($"    {variant.Index,2}. {variant.Name} {variant.ContentHash[..12]}  {variant.Describe()}");
                    }
                }
                else
                {
                    DiagnosticPrinter.Print(cli, r.Diagnostics);
                }
            }

            var errorCount = results.Sum(r => r.Diagnostics.Count);
            cli.Out.WriteLine($"{results.Count} file(s): {results.Count - invalid} valid, {invalid} invalid ({errorCount} error(s)) in {watch.Elapsed.TotalSeconds:0.00}s");
        }

        return invalid == 0 ? ExitCodes.Ok : ExitCodes.InvalidInput;
    }
}
