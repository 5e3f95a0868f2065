using System.CommandLine;
using Workflows.Cli.Commands;
using Workflows.Experiments.Validation;

namespace Workflows.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, CliContext.ForProcess());

    /// <summary>Entry point for tests: the same commands with captured output.</summary>
    public static int Run(string[] args, CliContext cli)
    {
        var root = BuildRoot(cli);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                cli.Err.WriteLine($"error: {error.Message}");
            }

            cli.Err.WriteLine("Run 'wf --help' or 'wf COMMAND --help' for usage.");
            return ExitCodes.Usage;
        }

        try
        {
            return parse.Invoke(new InvocationConfiguration
            {
                Output = cli.Out,
                Error = cli.Err,
                EnableDefaultExceptionHandler = false,
                // wf worker / wf gpu-agent drain on SIGTERM for up to their grace period; other commands keep the 2 s default.
                ProcessTerminationTimeout = WorkerCommand.TerminationTimeout(parse),
            });
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A failure the command did not anticipate still gets one readable line; WF_DEBUG=1 adds the stack.
            cli.Err.WriteLine($"error: {Untrusted.Escape(e.Message, Diagnostic.MaxPrintedChars)}");
            if (Environment.GetEnvironmentVariable("WF_DEBUG") == "1")
            {
                cli.Err.WriteLine(e);
            }

            return ExitCodes.InvalidInput;
        }
    }

    public static RootCommand BuildRoot(CliContext cli)
    {
        var root = new RootCommand("""
            wf: run long-context data-engineering experiments (Fu et al. 2024) from declarative YAML files.

            An experiment file (experiments/*.yaml) says which base model, source mix, length upsampling, token
            budget, context, optimiser and evaluation grid to use. wf validates it, plans it, and runs it as a
            durable workflow: data prep -> training -> needle / domain-loss evaluation -> report.

            Exit codes: 0 ok, 1 invalid input (validation errors), 2 usage error.
            """);
        root.Subcommands.Add(InitCommand.Create(cli));
        root.Subcommands.Add(ValidateCommand.Create(cli));
        root.Subcommands.Add(PlanCommand.Create(cli));
        root.Subcommands.Add(SchemaCommand.Create(cli));
        root.Subcommands.Add(PrepCommand.Create(cli));
        root.Subcommands.Add(TokenizeCommand.Create(cli));
        root.Subcommands.Add(TrainCommand.Create(cli));
        root.Subcommands.Add(TrainRankCommand.Create(cli));
        root.Subcommands.Add(EvalCommand.Create(cli));
        root.Subcommands.Add(DoctorCommand.Create(cli));
        root.Subcommands.Add(PrCommand.Create(cli));
        root.Subcommands.Add(BenchCommand.Create(cli));
        root.Subcommands.Add(RunCommand.Create(cli));
        root.Subcommands.Add(SubmitCommand.Create(cli));
        root.Subcommands.Add(StatusCommand.Create(cli));
        root.Subcommands.Add(CompareCommand.Create(cli));
        root.Subcommands.Add(WatchCommand.Create(cli));
        root.Subcommands.Add(CancelCommand.Create(cli));
        root.Subcommands.Add(LogsCommand.Create(cli));
        root.Subcommands.Add(WorkerCommand.Create(cli));
        root.Subcommands.Add(GpuAgentCommand.Create(cli));
        root.Subcommands.Add(ReportCommand.Create(cli));
        root.Subcommands.Add(ArchiveCommand.Create(cli));
        root.Subcommands.Add(CorpusCommand.Create(cli));
        root.Subcommands.Add(ListCommand.Create(cli));
        root.Subcommands.Add(ShowCommand.Create(cli));
        root.Subcommands.Add(RerunCommand.Create(cli));
        return root;
    }
}
