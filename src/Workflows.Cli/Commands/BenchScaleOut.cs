using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Engine;
using Workflows.Engine.Hosting;
using Workflows.Engine.Steps;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary>
/// <c>wf bench engine --workers N...</c>: a real prepare-data of S shards (the experiment file's data, shards and a
/// fresh seed per run so nothing is cached) executed by N separate <c>wf worker</c> processes plus one
/// <c>wf gpu-agent</c> process (CPU), all on one storage account, driven from this process through the client only.
/// Checks the published output: every shard exactly once in the content-addressed manifest and in the data-prep
/// manifest.json; reports wall time, shards/s and how the write activities spread over the workers.
/// </summary>
internal static partial class BenchScaleOut
{
    public static async Task<int> RunAsync(CliContext cli, string experimentFile, IReadOnlyList<int> workerCounts, int shards, long tokensPerShard, int repeat, CancellationToken ct)
    {
        await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
        var environment = WorkerEnvironment.Read(WorkerRole.Client);
        cli.Out.WriteLine($"{storage.Connection.Description}; {Environment.ProcessorCount} cores; experiment {experimentFile}, {shards} shards of {tokensPerShard} tokens");
        var rows = new List<string>();
        foreach (var workers in workerCounts)
        {
            var hub = EngineOptions.UniqueHubName("scale");
            var work = Path.Combine(Path.GetTempPath(), "wf-bench-" + hub);
            var options = EngineCli.Options(hub, environment, experimentFile);
            var client = await EngineClient.ConnectAsync(storage.Connection, options);
            var processes = new List<Child>();
            var shardsProduced = 0;
            var writes = 0;
            try
            {
                for (var i = 0; i < workers; i++)
                {
                    processes.Add(Child.Start("worker", $"w{i}", hub, Path.Combine(work, $"w{i}"), storage.Connection));
                }

                processes.Add(Child.Start("gpu-agent", "agent", hub, Path.Combine(work, "agent"), storage.Connection));
                foreach (var p in processes)
                {
                    await p.WaitForLineAsync(l => l.StartsWith(p.Role == "worker" ? "worker " : "gpu-agent ", StringComparison.Ordinal), TimeSpan.FromMinutes(2));
                }

                cli.Out.WriteLine($"{workers} worker process(es) + 1 gpu-agent process ready on task hub {hub}");
                for (var r = 0; r < repeat; r++)
                {
                    var request = Request(experimentFile, shards, tokensPerShard, seed: Random.Shared.Next(1, int.MaxValue));
                    var watch = Stopwatch.StartNew();
                    var runId = await client.SubmitAsync(request);
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromMinutes(15));
                    var view = await client.WaitAsync(runId, pollInterval: TimeSpan.FromMilliseconds(200), cancellationToken: timeout.Token);
                    watch.Stop();
                    if (view.Record.Status != RunStatus.Succeeded)
                    {
                        cli.Err.WriteLine($"error: run {runId} {view.Record.Status}: {view.Record.Error}");
                        return ExitCodes.InvalidInput;
                    }

                    var (produced, check) = await CheckShardsAsync(client, view, shards);
                    shardsProduced += produced;
                    var step = view.Record.Steps.Single(s => s.Type == PrepareDataStep.Type);
                    var stepSeconds = step.StartedAt is { } a && step.CompletedAt is { } b ? (b - a).TotalSeconds : double.NaN;
                    var line = string.Create(CultureInfo.InvariantCulture,
                        $"workers {workers}: run {watch.Elapsed.TotalSeconds,6:0.00} s end to end, prepare-data step {stepSeconds,6:0.00} s, {produced / stepSeconds,5:0.0} shards/s; {check}");
                    cli.Out.WriteLine(line);
                    rows.Add(line);
                }
            }
            finally
            {
                foreach (var p in processes)
                {
                    p.Terminate();
                }

                foreach (var p in processes)
                {
                    await p.WaitAsync(TimeSpan.FromSeconds(60));
                    var executions = p.Lines.LastOrDefault(l => l.Contains("executions: ", StringComparison.Ordinal));
                    if (p.Role == "worker")
                    {
                        writes += Writes(executions);
                        cli.Out.WriteLine($"  {p.Name} (pid {p.Pid}, exit {p.ExitCode}): {Writes(executions)} shard writes; {executions?[(executions.IndexOf("executions: ", StringComparison.Ordinal) + 12)..]}");
                    }

                    if (!p.Warnings.IsEmpty)
                    {
                        cli.Out.WriteLine($"  {p.Name}: {p.Warnings.Count} warning/error log line(s); last: {p.Warnings.Last()}");
                    }

                    p.Dispose();
                }

                var onceLine = $"workers {workers}: {writes} shard write executions for {shardsProduced} shards published " +
                               (writes == shardsProduced ? "(every shard written exactly once)" : $"({writes - shardsProduced} re-executed)");
                cli.Out.WriteLine(onceLine);
                rows.Add(onceLine);
                await client.DeleteHubAsync();
                if (Directory.Exists(work))
                {
                    Directory.Delete(work, recursive: true);
                }
            }
        }

        cli.Out.WriteLine("summary:");
        foreach (var row in rows)
        {
            cli.Out.WriteLine("  " + row);
        }

        return ExitCodes.Ok;
    }

    private static int Writes(string? executions) =>
        executions is not null && WriteCount().Match(executions) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"prepare-data\.write=(\d+)")]
    private static partial Regex WriteCount();

    /// <summary>The experiment with S shards and a fresh seed (new cache key, same amount of work), prepare-data only.</summary>
    private static SubmitRequest Request(string experimentFile, int shards, long tokensPerShard, int seed)
    {
        var workflows = RepositoryLayout.FindWorkflowsDirectory(experimentFile)
                        ?? throw new DirectoryNotFoundException($"no workflows/ folder above {experimentFile}");
        var yaml = File.ReadAllText(experimentFile);
        yaml = ShardsLine().Replace(yaml, $"${{indent}}shards: {shards}", 1);
        yaml = SeedLine().Replace(yaml, $"${{indent}}seed: {seed}", 1);
        // Enough tokens for every shard to get sequences (the smoke file's 64K would leave most of 64 shards empty).
        yaml = BudgetLine().Replace(yaml, m => $"{m.Groups["indent"].Value}token_budget: {Math.Max(shards * tokensPerShard, 1)}", 1);
        var spec = ExperimentLoader.LoadText(experimentFile, yaml, new LoadOptions(WorkflowsDirectory: workflows)).Require();
        var template = TemplateLoader.LoadFile(Path.Combine(workflows, spec.Workflow + ".yaml"));
        var bound = TemplateLoader.Bind(template.Template!, spec);
        var prep = bound with { Steps = [.. bound.Steps.Where(s => s.Type == PrepareDataStep.Type)] };
        return new SubmitRequest(spec, yaml, prep, Path.GetDirectoryName(Path.GetFullPath(experimentFile))!, EngineCli.CodeCommit());
    }

    [GeneratedRegex(@"^(?<indent>\s+)shards:\s*\d+", RegexOptions.Multiline)]
    private static partial Regex ShardsLine();

    [GeneratedRegex(@"^(?<indent>\s+)token_budget:\s*[0-9.]+[KMB]?", RegexOptions.Multiline)]
    private static partial Regex BudgetLine();

    [GeneratedRegex(@"^(?<indent>\s+)seed:\s*\d+", RegexOptions.Multiline)]
    private static partial Regex SeedLine();

    /// <summary>
    /// Every shard exactly once: the published content-addressed manifest lists shard-00000 .. shard-(N-1) once each
    /// (hash-verified when read), and the data-prep manifest.json lists the same N. N can be below the requested count
    /// when the token budget yields fewer sequences than shards x sequences-per-shard (the planner's ceil division).
    /// </summary>
    private static async Task<(int Shards, string Text)> CheckShardsAsync(EngineClient client, RunView view, int requested)
    {
        var output = view.Result!.Outputs.Values.Single(o => o.Activity == PrepareDataStep.Type);
        var manifests = new ManifestStore(client.Store);
        var manifest = await manifests.TryGetAsync(ArtifactKey.FromParts(output.Activity, PrepareDataStep.Version, output.KeyHash))
                       ?? throw new InvalidOperationException("the prepare-data manifest is missing");
        var shardEntries = manifest.Entries.Where(e => ShardPath().IsMatch(e.Path)).Select(e => e.Path).ToList();
        var n = shardEntries.Count;
        var expected = Enumerable.Range(0, n).Select(i => $"{PrepareDataStep.DataFolder}/shard-{i:D5}.parquet").ToList();
        if (n == 0 || !shardEntries.Order(StringComparer.Ordinal).SequenceEqual(expected, StringComparer.Ordinal))
        {
            throw new InvalidOperationException($"manifest check failed: {n} shard entries, {shardEntries.Distinct().Count()} distinct, not shard-00000..{n - 1:D5}");
        }

        foreach (var path in expected)
        {
            await using var shard = await manifests.OpenVerifiedAsync(manifest, path);
            await shard.CopyToAsync(Stream.Null); // reading to the end verifies SHA-256 and length
        }

        await using var stream = await manifests.OpenVerifiedAsync(manifest, $"{PrepareDataStep.DataFolder}/manifest.json");
        using var reader = new StreamReader(stream);
        var dataManifest = await reader.ReadToEndAsync();
        var listed = expected.Count(p => dataManifest.Contains($"\"{Path.GetFileName(p)}\"", StringComparison.Ordinal));
        if (listed != n)
        {
            throw new InvalidOperationException($"data-prep manifest.json lists {listed} of {n} shards");
        }

        return (n, $"manifest: {n} shards (of {requested} requested), each exactly once, all hashes verified");
    }

    [GeneratedRegex(@"(^|/)shard-\d{5}\.parquet$")]
    private static partial Regex ShardPath();

    /// <summary>A <c>wf worker</c> / <c>wf gpu-agent</c> child process of this same wf build.</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _process;

        private Child(Process process, string role, string name)
        {
            _process = process;
            Role = role;
            Name = name;
        }

        public string Role { get; }
        public string Name { get; }
        public int Pid => _process.Id;
        public int ExitCode => _process.HasExited ? _process.ExitCode : -1;
        public ConcurrentQueue<string> Lines { get; } = new();
        public ConcurrentQueue<string> Warnings { get; } = new();

        public static Child Start(string role, string name, string hub, string workDir, StorageConnection connection)
        {
            var apphost = Path.Combine(AppContext.BaseDirectory, "wf");
            var info = File.Exists(apphost) ? new ProcessStartInfo(apphost) : new ProcessStartInfo("dotnet", [typeof(Program).Assembly.Location]);
            info.ArgumentList.Add(role);
            info.RedirectStandardOutput = true;
            info.RedirectStandardError = true;
            info.UseShellExecute = false;
            info.Environment[WorkerEnvironment.TaskHubVariable] = hub;
            info.Environment[WorkerEnvironment.WorkDirVariable] = workDir;
            info.Environment[WorkerEnvironment.DataCacheVariable] = Path.Combine(workDir, "data-cache");
            info.Environment[WorkerEnvironment.LogLevelVariable] = "Warning";
            if (connection.IsLocalAzurite)
            {
                // A local Azurite's well-known development key; configured storage reaches the children through the inherited environment.
                info.Environment[StorageConnection.ConnectionStringVariable] = connection.ConnectionString;
            }

            var process = Process.Start(info)!;
            var child = new Child(process, role, name);
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    child.Lines.Enqueue(line);
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                // WF_LOG_LEVEL=Warning: only DTFx's and wf's warnings and errors come here (JSON lines).
                if (e.Data is { } line && line.StartsWith('{'))
                {
                    child.Warnings.Enqueue(line);
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return child;
        }

        public async Task WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
        {
            var watch = Stopwatch.StartNew();
            while (!Lines.Any(match))
            {
                if (_process.HasExited || watch.Elapsed > timeout)
                {
                    throw new InvalidOperationException($"{Role} {Name} did not start: {string.Join(" | ", Lines.TakeLast(5))}");
                }

                await Task.Delay(100);
            }
        }

        public void Terminate()
        {
            if (!_process.HasExited)
            {
                _ = NativeSignal.Kill(_process.Id, 15);
            }
        }

        public async Task WaitAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }

        public void Dispose() => _process.Dispose();
    }

    private static class NativeSignal
    {
#pragma warning disable SYSLIB1054
        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
    }
}
