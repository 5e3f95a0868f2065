using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Store;
using Workflows.Engine;
using Workflows.Engine.Hosting;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

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
    /// <summary>How long a follow keeps going through storage that cannot be used (a restarting emulator, a network blip).</summary>
    public static readonly TimeSpan StorageOutageGrace = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Prints a line whenever a step's state, phase, counts or attempts change; returns the final view. Storage that
    /// cannot be used is reported once per distinct problem and followed through for <see cref="StorageOutageGrace"/>;
    /// a run whose record vanished ends the follow at once (<see cref="RunRecordMissingException"/>).
    /// </summary>
    public static async Task<RunView> FollowAsync(CliContext cli, EngineClient client, string runId, CancellationToken ct)
    {
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        var watch = Stopwatch.StartNew();
        Stopwatch? outage = null;
        string? problem = null;
        RunView view;
        while (true)
        {
            try
            {
                view = await client.WaitAsync(runId, v =>
                {
                    outage = null;
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
                break;
            }
            catch (StorageUnavailableException e) when ((outage ??= Stopwatch.StartNew()).Elapsed < StorageOutageGrace)
            {
                if (e.Message != problem)
                {
                    cli.Err.WriteLine($"warning: {e.Message} Still following run {runId} for up to {StorageOutageGrace.TotalMinutes:0} min.");
                    problem = e.Message;
                }

                await Task.Delay(TimeSpan.FromSeconds(2), ct);
            }
        }

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

    public static void PrintRun(CliContext cli, RunView view, bool json, IReadOnlyList<(Workflows.Engine.Jobs.GpuJob Job, Workflows.Engine.Jobs.GpuJobStatus? Status)>? gpuJobs = null)
    {
        if (json)
        {
            cli.Out.WriteLine(JsonSerializer.Serialize(new
            {
                record = view.Record,
                orchestration = view.OrchestrationStatus,
                progress = view.Progress,
                gpuJobs = gpuJobs?.Select(j => new { id = j.Job.JobId, step = j.Job.Work.Step, enqueuedAt = j.Job.EnqueuedAt, status = j.Status }),
            }, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
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
