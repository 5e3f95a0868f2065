using System.CommandLine;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary><c>wf submit FILE</c>: record the run and start its orchestration; a worker runs it.</summary>
public static class SubmitCommand
{
    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment file to submit." };
        var hub = EngineCli.HubOption();
        var command = new Command("submit", """
            Submit an experiment without running it here: prints the run id. Workers ('wf worker', 'wf gpu-agent') sharing
            the storage account run it. A sweep file (matrix:) submits every variant as its own run and prints the
            sweep id ('wf status SWEEP', 'wf compare SWEEP').

            Example:
              wf submit experiments/smoke.yaml && wf worker
            """)
        {
            file, hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (Workflows.Experiments.Matrix.SweepLoader.IsSweepFile(parse.GetValue(file)!))
            {
                return await Workflows.Cli.Sweeps.SweepCli.SubmitAsync(cli, parse.GetValue(file)!, parse.GetValue(hub)!, ct);
            }

            try
            {
                var request = EngineCli.Prepare(parse.GetValue(file)!);
                var runId = await EngineCli.WithClient(cli, parse.GetValue(hub)!, c => c.SubmitAsync(request), ct);
                cli.Out.WriteLine(runId);
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is ValidationException or FileNotFoundException or DirectoryNotFoundException or InvalidOperationException)
            {
                return EngineCli.Fail(cli, e);
            }
        });
        return command;
    }
}
