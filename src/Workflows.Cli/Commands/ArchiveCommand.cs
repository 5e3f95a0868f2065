using System.CommandLine;
using System.Text;
using Workflows.Cli.GitOps;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Archive;
using Workflows.GitOps.Publishing;

namespace Workflows.Cli.Commands;

/// <summary><c>wf archive --commit SHA FILES...</c>: record experiment → runs in the archive index (on merge to main).</summary>
public static class ArchiveCommand
{
    public static Command Create(CliContext cli)
    {
        var commit = new Option<string>("--commit") { Description = "The main-branch commit being archived.", Required = true };
        var files = new Argument<string[]>("files") { Description = "Experiment files merged by that commit.", Arity = ArgumentArity.OneOrMore };
        var hub = EngineCli.HubOption();
        var command = new Command("archive", """
            Record each experiment in the archive index (archive/index.json in the engine's container): its name, path,
            canonical content hash and the runs made of exactly that content (found in the run records by name and hash).
            From then on the file is immutable ('wf pr check-archive' fails a PR that edits it). The index is updated with
            optimistic concurrency on its ETag. When the reports container is public (WF_REPORTS_ACCESS=public, the
            default) a public copy is written there too: its URL is what WF_ARCHIVE_INDEX_URL should hold.

            A sweep file records each variant (its name, hash and runs) and the sweep under its own name (the hash of its
            variants' names and hashes, every variant's runs).

            Example:
              wf archive --commit $GITHUB_SHA experiments/per-source-5b-80k.yaml
            """)
        {
            commit, files, hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (CiRef.Problem() is { } wrongRef)
            {
                cli.Err.WriteLine($"error: {wrongRef}");
                return ExitCodes.InvalidInput;
            }

            var workflows = GitOpsCli.WorkflowsDirectory(null);
            var specs = new List<(string Path, ExperimentSpec Spec)>();
            var sweeps = new List<(string Path, string Name, string Hash, IReadOnlyList<string> Variants)>();
            foreach (var file in parse.GetValue(files)!)
            {
                // A sweep file archives each variant (its own name and hash) and the sweep itself, so its path is frozen
                // even when a variant's name is archived already from a single file.
                var loaded = Workflows.Experiments.Matrix.SweepLoader.LoadFile(file, new LoadOptions(WorkflowsDirectory: workflows));
                if (!loaded.IsValid)
                {
                    DiagnosticPrinter.Print(cli, loaded.Diagnostics);
                    return ExitCodes.InvalidInput;
                }

                var path = GitOpsCli.RepositoryPath(file, workflows);
                specs.AddRange(loaded.Variants.Select(v => (path, v.Spec)));
                if (loaded.IsMatrix)
                {
                    var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
                        Encoding.UTF8.GetBytes(string.Join('\n', loaded.Variants.Select(v => $"{v.Name} {v.ContentHash}")))));
                    sweeps.Add((path, loaded.Name!, hash, [.. loaded.Variants.Select(v => v.Name)]));
                }
            }

            return await GitOpsCli.WithEngine(cli, parse.GetValue(hub)!, async (client, connection) =>
            {
                var runs = await client.ListAsync(ct);
                var entries = specs.Select(s =>
                {
                    var hash = CanonicalForm.Hash(s.Spec);
                    var ids = runs.Where(r => r.ExperimentName == s.Spec.Name && r.ExperimentHash == hash && r.RerunOf is null)
                        .OrderBy(r => r.SubmittedAt).Select(r => r.RunId).ToList();
                    return new ArchivedExperiment(s.Spec.Name, s.Path, hash, ids) { Commit = parse.GetValue(commit) };
                }).ToList();
                entries.AddRange(sweeps.Select(w => new ArchivedExperiment(w.Name, w.Path, w.Hash,
                    [.. entries.Where(e => w.Variants.Contains(e.Name)).SelectMany(e => e.Runs)]) { Commit = parse.GetValue(commit) }));
                ArchiveUpdate update;
                try
                {
                    update = await new BlobArchiveIndex(client.Store).RecordAsync(entries, ct);
                }
                catch (InvalidOperationException e)
                {
                    cli.Err.WriteLine($"error: {e.Message}");
                    return ExitCodes.InvalidInput;
                }

                foreach (var e in entries)
                {
                    var all = update.Index.Experiments.First(x => x.Name == e.Name).Runs;
                    cli.Out.WriteLine($"archived {e.Name} ({e.Path}, {e.ContentHash[..12]}): {all.Count} run(s){(all.Count == 0 ? " (none yet: the file is frozen anyway)" : ": " + string.Join(", ", all))}");
                }

                var publisher = GitOpsCli.Publisher(connection);
                if (publisher.Access == ReportAccess.PublicBlob)
                {
                    var url = await publisher.PutAsync(BlobArchiveIndex.BlobName, Encoding.UTF8.GetBytes(update.Index.ToJson()), ct);
                    cli.Out.WriteLine($"public copy: {url} (set the repository variable WF_ARCHIVE_INDEX_URL to this)");
                }

                return ExitCodes.Ok;
            }, ct);
        });
        return command;
    }
}
