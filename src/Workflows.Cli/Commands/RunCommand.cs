using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DurableTask.Core;
using Spectre.Console;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine;
using Workflows.Engine.Hosting;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary><c>wf run FILE</c>: submit an experiment and follow it, with a worker and a GPU agent inside this process.</summary>
public static class RunCommand
{
    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment file to run." };
        var hub = EngineCli.HubOption();
        var command = new Command("run", """
            Submit an experiment and follow it: a live view of steps, shards done, attempts and cached steps. This process
            also runs a worker and a GPU agent, so nothing else is needed locally. Ctrl-C detaches: the run is durable
            and continues whenever a worker runs ('wf worker', 'wf gpu-agent'); follow it again with 'wf watch RUN'.
            Storage: WF_STORAGE_CONNECTION_STRING, else a local Azurite (started for you when none is running).

            Example:
              wf run experiments/smoke.yaml
            """)
        {
            file, hub,
        };
        command.SetAction(async (parse, ct) =>
        {
            SubmitRequest request;
            try
            {
                request = EngineCli.Prepare(parse.GetValue(file)!);
            }
            catch (Exception e) when (e is ValidationException or FileNotFoundException or DirectoryNotFoundException or InvalidOperationException)
            {
                return EngineCli.Fail(cli, e);
            }

            await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
            var options = EngineCli.Options(parse.GetValue(hub)!, parse.GetValue(file)!);
            await using var host = await EngineHost.StartAsync(storage.Connection, options,
                (_, services) => Workflows.Cli.GitOps.GitOpsWiring.AddRunFinishedHook(services, storage.Connection, cli.Err));
            using var agentStop = new CancellationTokenSource();
            var agent = new GpuAgent(host.Services, GpuJobHandlers.All(host.Services), cli.Err);
            var agentTask = agent.RunAsync(agentStop.Token);
            var runId = await host.Client.SubmitAsync(request);
            cli.Out.WriteLine($"submitted run {runId} ({request.Spec.Name}, workflow {request.Workflow.Name} v{request.Workflow.Version})");
            try
            {
                var view = await EngineCli.FollowAsync(cli, host.Client, runId, ct);
                if (view.Record.Status == RunStatus.Succeeded
                    && view.Record.Steps.FirstOrDefault(s => s.Step == "report")?.OutputPrefix is { } reportPrefix)
                {
                    // The report lives in blob storage; a local copy is what a person opens.
                    var local = Path.Combine("out", "runs", runId, "report");
                    var files = await RunOutputs.DownloadAsync(host.Services, reportPrefix, "report", local, ct);
                    cli.Out.WriteLine($"report: {reportPrefix} in {storage.Connection.Description}");
                    cli.Out.WriteLine($"local copy: {string.Join(", ", files.Select(f => Path.GetRelativePath(Directory.GetCurrentDirectory(), f)))}");
                }

                return view.Record.Status == RunStatus.Succeeded ? ExitCodes.Ok : ExitCodes.InvalidInput;
            }
            catch (OperationCanceledException)
            {
                cli.Out.WriteLine($"detached from {runId}; it continues whenever a worker runs: 'wf worker' (and 'wf gpu-agent'), then 'wf watch {runId}'");
                return ExitCodes.Ok;
            }
            finally
            {
                await agentStop.CancelAsync();
                await agentTask;
            }
        });
        return command;
    }
}

/// <summary>Shared by the engine commands: options, storage, the follow loop and status rendering.</summary>
internal static class EngineCli
{
    public const string HubVariable = "WF_TASK_HUB";

    public static Option<string> HubOption() => new("--hub")
    {
        Description = $"DTFx task hub name (letters and digits). Default: ${HubVariable} or 'wf'.",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable(HubVariable) is { Length: > 0 } h ? h : "wf",
    };

    /// <summary>Engine options from the environment the manifests set (WF_ARTIFACTS_CONTAINER, WF_WORK_DIR, WF_DATA_CACHE) and the --hub option.</summary>
    public static EngineOptions Options(string hub, string? experimentFile = null, WorkerRole role = WorkerRole.Client) =>
        Options(hub, WorkerEnvironment.Read(role), experimentFile);

    public static EngineOptions Options(string hub, WorkerEnvironment environment, string? experimentFile = null) => new()
    {
        TaskHubName = hub,
        ContainerName = environment.ArtifactsContainer,
        CacheDirectory = environment.CacheDirectory,
        ResolveTokenizer = name => TokenizerResolver.Resolve(name, null,
            experimentFile is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(Path.GetFullPath(experimentFile))!),
    };

    public static SubmitRequest Prepare(string experimentFile)
    {
        var workflows = RepositoryLayout.FindWorkflowsDirectory(experimentFile)
                        ?? throw new DirectoryNotFoundException($"no workflows/ folder above {experimentFile}: the experiment's workflow template is looked up there");
        return EngineClient.Prepare(experimentFile, workflows, CodeCommit());
    }

    public static int Fail(CliContext cli, Exception e)
    {
        if (e is ValidationException v)
        {
            DiagnosticPrinter.Print(cli, v.Diagnostics);
        }
        else
        {
            cli.Err.WriteLine($"error: {e.Message}");
        }

        return ExitCodes.InvalidInput;
    }

    public static string CodeCommit()
    {
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse HEAD") { RedirectStandardOutput = true, RedirectStandardError = true });
            var sha = git?.StandardOutput.ReadToEnd().Trim();
            git?.WaitForExit();
            return git?.ExitCode == 0 && !string.IsNullOrEmpty(sha) ? sha : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    public static Task<T> WithClient<T>(CliContext cli, string hub, Func<EngineClient, Task<T>> action, CancellationToken ct) =>
        WithClient(cli, hub, (client, _) => action(client), ct);

    /// <summary>The same, with the storage connection (for commands that also publish or report).</summary>
    public static async Task<T> WithClient<T>(CliContext cli, string hub, Func<EngineClient, Workflows.Artifacts.StorageConnection, Task<T>> action, CancellationToken ct)
    {
        await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
        var client = await EngineClient.ConnectAsync(storage.Connection, Options(hub));
        return await action(client, storage.Connection);
    }

    /// <summary>Prints a line whenever a step's state, phase, counts or attempts change; returns the final view.</summary>
    public static async Task<RunView> FollowAsync(CliContext cli, EngineClient client, string runId, CancellationToken ct)
    {
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        var watch = Stopwatch.StartNew();
        var view = await client.WaitAsync(runId, v =>
        {
            foreach (var (step, p) in v.Progress?.Steps ?? new Dictionary<string, StepProgress>())
            {
                var line = StepLine(step, p);
                if (!last.TryGetValue(step, out var before) || before != line)
                {
                    last[step] = line;
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{watch.Elapsed:hh\\:mm\\:ss}] {line}"));
                }
            }
        }, TimeSpan.FromSeconds(1), ct);
        cli.Out.WriteLine($"run {runId}: {view.Record.Status}{(view.Record.Duration is { } d ? $" in {d.TotalSeconds:0.0}s" : "")}");
        if (view.Record.Error is { } error)
        {
            cli.Out.WriteLine($"error: {error}");
        }

        return view;
    }

    public static string StepLine(string step, StepProgress p)
    {
        var counts = p.Total > 1 || p.Done > 0 ? $" {p.Done}/{p.Total}" : "";
        var extra = new List<string>();
        if (p.Cached)
        {
            extra.Add("cached");
        }

        if (p.Attempts > 1 || p.Retries > 0)
        {
            extra.Add($"{p.Retries} retr{(p.Retries == 1 ? "y" : "ies")}");
        }

        if (p.Error is not null)
        {
            extra.Add($"error{(p.FailedShard is null ? "" : $" in shard {p.FailedShard}")}: {p.Error}");
        }

        var phase = p.State == StepStates.Running && p.Phase is not null ? $" ({p.Phase})" : "";
        return $"{step}: {p.State}{phase}{counts}{(extra.Count > 0 ? " - " + string.Join(", ", extra) : "")}";
    }

    public static void PrintRun(CliContext cli, RunView view, bool json)
    {
        if (json)
        {
            cli.Out.WriteLine(JsonSerializer.Serialize(new { record = view.Record, orchestration = view.OrchestrationStatus, progress = view.Progress },
                new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
            return;
        }

        var r = view.Record;
        cli.Out.WriteLine($"run {r.RunId}  {r.ExperimentName}  {r.Status}  submitted {r.SubmittedAt:u}{(r.Duration is { } d ? $"  took {d.TotalSeconds:0.0}s" : "")}");
        var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (var h in new[] { "step", "state", "done", "attempts", "retries", "cached", "started", "took", "error" })
        {
            table.AddColumn(h);
        }

        foreach (var s in r.Steps)
        {
            var p = view.Progress?.Steps.GetValueOrDefault(s.Step);
            var took = s.StartedAt is { } a && s.CompletedAt is { } b ? $"{(b - a).TotalSeconds:0.0}s" : "";
            table.AddRow(
                Markup.Escape(s.Step),
                Markup.Escape(p?.State ?? s.Status),
                p is null ? "" : $"{p.Done}/{p.Total}",
                p is null ? "" : p.Attempts.ToString(CultureInfo.InvariantCulture),
                p is null ? "" : p.Retries.ToString(CultureInfo.InvariantCulture),
                s.Cached || p?.Cached == true ? "yes" : "",
                s.StartedAt?.ToString("HH:mm:ss", CultureInfo.InvariantCulture) ?? "",
                took,
                Markup.Escape((s.Shard is null ? "" : $"shard {s.Shard}: ") + (s.Error ?? "")));
        }

        cli.Console.Write(table);
        if (r.Error is not null)
        {
            cli.Out.WriteLine($"error: {r.Error}");
        }
    }
}
