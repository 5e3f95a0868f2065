using System.CommandLine;
using System.Globalization;

namespace Workflows.Cli.Commands;

/// <summary><c>wf logs RUN [STEP]</c>: the run's timeline from its record and live progress.</summary>
public static class LogsCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Argument<string>("run") { Description = "The run id." };
        var step = new Argument<string?>("step") { Description = "Only this step.", Arity = ArgumentArity.ZeroOrOne };
        var hub = EngineCli.HubOption();
        var command = new Command("logs", """
            A run's timeline: when each step started and ended, attempts, retries, cached or not, its output prefix and
            its error. (Activity stdout is not captured yet; workers print to their own console.)
            """)
        {
            run, step, hub,
        };
        command.SetAction(async (parse, ct) => await EngineCli.WithClient(cli, parse.GetValue(hub)!, async client =>
        {
            var view = await client.GetAsync(parse.GetValue(run)!);
            if (view is null)
            {
                cli.Err.WriteLine($"error: no run '{parse.GetValue(run)}'");
                return ExitCodes.InvalidInput;
            }

            var only = parse.GetValue(step);
            var r = view.Record;
            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.SubmittedAt:u} submitted {r.ExperimentName} (commit {r.CodeCommit}, experiment {r.ExperimentHash[..Math.Min(12, r.ExperimentHash.Length)]})"));
            foreach (var s in r.Steps.Where(s => only is null || s.Step == only))
            {
                var p = view.Progress?.Steps.GetValueOrDefault(s.Step);
                if (s.StartedAt is { } started)
                {
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{started:u} {s.Step}: started"));
                }

                if (s.CompletedAt is { } done)
                {
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{done:u} {s.Step}: {s.Status}{(s.Cached ? " (cached)" : "")}{(p is null ? "" : $", {p.Done}/{p.Total} items, {p.Attempts} attempt(s), {p.Retries} retries")}{(string.IsNullOrEmpty(s.OutputPrefix) ? "" : $", output {s.OutputPrefix}")}"));
                }

                if (s.Error is not null)
                {
                    cli.Out.WriteLine($"    error{(s.Shard is null ? "" : $" in shard {s.Shard}")}: {s.Error}");
                }
            }

            if (only is null && r.CompletedAt is { } end)
            {
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{end:u} run {r.Status}{(r.Error is null ? "" : ": " + r.Error)}"));
            }

            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
