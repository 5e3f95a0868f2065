using System.CommandLine;
using Workflows.Cli.GitOps;
using Workflows.DataPrep.Corpus;
using Workflows.Engine;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Commands;

/// <summary><c>wf rerun RUN_ID [--from STEP] [--force]</c>: resubmit an archived run exactly as it ran.</summary>
public static class RerunCommand
{
    public static Command Create(CliContext cli)
    {
        var run = new Argument<string>("run") { Description = "The run to reproduce." };
        var from = new Option<string?>("--from") { Description = "Recompute this step and every later one (earlier steps reuse their archived outputs)." };
        var force = new Option<bool>("--force") { Description = "Recompute every step (or every step from --from) instead of reusing cached outputs." };
        var wait = new Option<bool>("--wait") { Description = "Follow the rerun (a worker must be running) and compare it with the archived run; exit 1 if data prep differs." };
        var workflowsDir = new Option<string?>("--workflows-dir") { Description = "Workflow templates (default: ./workflows of this checkout)." };
        var hub = EngineCli.HubOption();
        var command = new Command("rerun", """
            Resubmit a run exactly as it ran: the experiment YAML stored with the run (its canonical hash must still be
            the recorded one), the same input files (their SHA-256 are checked against the archived data-prep manifest
            before anything is submitted; a difference is named file by file), the same seeds (they are in the YAML).
            Warns when this build's commit differs from the one recorded at submit. Without --force/--from the engine
            reuses every cached output (content-addressed keys: same inputs, same key), so a rerun costs nothing; with
            --force it recomputes, and data prep must then reproduce the archived shard hashes bit for bit (the engine
            fails the step naming each differing shard, expected vs got). Returns at once unless --wait.

            Example:
              wf rerun 20260301-142501-3fa9c2 --force --wait
            """)
        {
            run, from, force, wait, workflowsDir, hub,
        };
        command.SetAction(async (parse, ct) => CiRef.Problem() is { } wrongRef
            ? Refuse(cli, wrongRef)
            : await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, _) =>
        {
            var id = parse.GetValue(run)!;
            var archived = (await client.Runs.GetAsync(id, ct))?.Record;
            if (archived is null)
            {
                cli.Err.WriteLine($"error: no run '{id}'");
                return ExitCodes.InvalidInput;
            }

            if (archived.DataPaths is null || archived.ExperimentDirectory is null)
            {
                cli.Err.WriteLine($"error: run '{id}' predates recorded input paths: it cannot be rerun exactly");
                return ExitCodes.InvalidInput;
            }

            var yaml = await client.Runs.ReadExperimentYamlAsync(id, ct);
            var workflows = GitOpsCli.WorkflowsDirectory(parse.GetValue(workflowsDir));
            // Policy off: the archived file was accepted when it ran; today's policy must not stop its reproduction.
            var spec = ExperimentLoader.LoadText($"runs/{id}/experiment.yaml", yaml, new LoadOptions(PolicyMode.Off, workflows)).Require();
            var hash = CanonicalForm.Hash(spec);
            if (hash != archived.ExperimentHash)
            {
                cli.Err.WriteLine($"error: the stored experiment's canonical hash is {hash} in this build, the run recorded {archived.ExperimentHash}: the spec layer changed; check out commit {archived.CodeCommit} to rerun it");
                return ExitCodes.InvalidInput;
            }

            var template = TemplateLoader.LoadFile(Path.Combine(workflows, spec.Workflow + ".yaml"));
            if (!template.IsValid)
            {
                DiagnosticPrinter.Print(cli, template.Diagnostics);
                return ExitCodes.InvalidInput;
            }

            var bound = TemplateLoader.Bind(template.Template!, spec);
            if (archived.WorkflowVersion is { } v && v != bound.Version)
            {
                cli.Err.WriteLine($"warning: workflow '{bound.Name}' is version {bound.Version} here; the run used version {v}");
            }

            var commit = EngineCli.CodeCommit();
            if (commit != archived.CodeCommit)
            {
                cli.Err.WriteLine($"warning: this build is commit {commit}; run {id} was submitted from commit {archived.CodeCommit}. Step versions keep cached outputs apart, but recomputed steps run this build's code: for a bit-exact rerun of code changes, check out {archived.CodeCommit}.");
            }

            var outputs = new RunOutputsReader(client.Store);
            if (await outputs.DataPrepAsync(archived, ct) is { } data)
            {
                var problems = new List<string>();
                // Local inputs are hashed again; a registered corpus (no data.paths) is compared through its manifest, whose
                // blobs are content-addressed and verified when a worker downloads them.
                var corpus = archived.DataPaths.Count == 0
                    ? await new Workflows.Artifacts.Corpora.CorpusRegistry(client.Store).TryGetAsync(spec.Data.Corpus, ct)
                    : null;
                var current = archived.DataPaths.Count > 0
                    ? InputFile.Discover(archived.DataPaths).ToDictionary(f => f.Key, f => CorpusMeasurer.Sha256Of(f.Path), StringComparer.Ordinal)
                    : (corpus?.Files ?? []).ToDictionary(f => f.Key, f => f.Sha256, StringComparer.Ordinal);
                var absent = archived.DataPaths.Count == 0 && corpus is null ? $"(corpus '{spec.Data.Corpus}' is not registered)" : "(file missing)";
                foreach (var (key, expected) in data.Inputs)
                {
                    var got = current.GetValueOrDefault(key);
                    if (got != expected)
                    {
                        problems.Add($"input {key}: expected SHA-256 {expected}, got {got ?? absent}");
                    }
                }

                if (problems.Count > 0)
                {
                    cli.Err.WriteLine($"error: the inputs of run {id} changed; an exact rerun is impossible:\n  " + string.Join("\n  ", problems));
                    return ExitCodes.InvalidInput;
                }

                cli.Out.WriteLine($"inputs verified: {data.Inputs.Count} file(s) match the archived SHA-256");
            }

            var recomputeFrom = parse.GetValue(from) ?? (parse.GetValue(force) ? bound.Steps[0].Id : null);
            var request = new SubmitRequest(spec, yaml, bound, archived.ExperimentDirectory, commit);
            string rerunId;
            try
            {
                rerunId = await client.SubmitAsync(request, options: new SubmitOptions { RerunOf = id, RecomputeFrom = recomputeFrom });
            }
            catch (InvalidOperationException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            cli.Out.WriteLine($"rerun {rerunId} of {id} submitted{(recomputeFrom is null ? " (cached outputs reused)" : $" (recomputing from step '{recomputeFrom}')")}");
            if (!parse.GetValue(wait))
            {
                return ExitCodes.Ok;
            }

            var view = await EngineCli.FollowAsync(cli, client, rerunId, ct);
            var comparison = await RerunComparison.CompareAsync(outputs, archived, view.Record, ct);
            cli.Out.WriteLine(comparison.ToMarkdown());
            return view.Record.Status == Workflows.Artifacts.Runs.RunStatus.Succeeded && comparison.DataPrepIdentical ? ExitCodes.Ok : ExitCodes.InvalidInput;
        }, ct));
        return command;
    }

    private static int Refuse(CliContext cli, string problem)
    {
        cli.Err.WriteLine($"error: {problem}");
        return ExitCodes.InvalidInput;
    }
}
