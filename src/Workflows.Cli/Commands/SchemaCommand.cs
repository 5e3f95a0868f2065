using System.CommandLine;
using Workflows.Experiments.Schema;

namespace Workflows.Cli.Commands;

public static class SchemaCommand
{
    public static Command Create(CliContext cli)
    {
        var output = new Option<string?>("--out") { Description = "Write the schema to this file instead of standard output." };
        var check = new Option<string?>("--check") { Description = "Compare this file with the generated schema; exit 1 when it is out of date." };
        var command = new Command("schema", """
            Print the JSON Schema of experiment files, generated from the spec's types. experiments/schema.json is this
            output; editors with the YAML language server use it through the first line of each experiment:
              # yaml-language-server: $schema=./schema.json

            Examples:
              wf schema --out experiments/schema.json
              wf schema --check experiments/schema.json
            """)
        {
            output, check,
        };
        command.SetAction(parse =>
        {
            var schema = SchemaGenerator.Generate();
            if (parse.GetValue(check) is { } checkPath)
            {
                var current = File.Exists(checkPath) ? File.ReadAllText(checkPath) : "";
                if (current != schema)
                {
                    cli.Err.WriteLine($"{checkPath} is out of date: run 'wf schema --out {checkPath}'");
                    return ExitCodes.InvalidInput;
                }

                cli.Out.WriteLine($"{checkPath} is up to date");
                return ExitCodes.Ok;
            }

            if (parse.GetValue(output) is { } outPath)
            {
                var temp = outPath + ".tmp";
                File.WriteAllText(temp, schema);
                File.Move(temp, outPath, overwrite: true);
                cli.Out.WriteLine($"wrote {outPath}");
                return ExitCodes.Ok;
            }

            cli.Out.Write(schema);
            return ExitCodes.Ok;
        });
        return command;
    }
}
