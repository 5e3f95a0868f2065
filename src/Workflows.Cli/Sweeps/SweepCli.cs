using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.Runs;
using Workflows.Cli.Commands;
using Workflows.Engine;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Evaluation.Comparison;
using Workflows.Experiments.Matrix;
using Workflows.Experiments.Validation;
using Workflows.GitOps.Runs;

namespace Workflows.Cli.Sweeps;

/// <summary>
/// The sweep side of the engine commands: <c>wf submit</c> and <c>wf run</c> of a sweep file, <c>wf status SWEEP</c>.
/// A sweep is its variants' ordinary runs plus the sweep record that groups them; nothing here changes how a run runs.
/// </summary>
internal static class SweepCli
{
    public static JsonArray VariantsJson(IReadOnlyList<SweepVariant> variants) =>
        new([.. variants.Select(v => (JsonNode?)new JsonObject
        {
            ["index"] = v.Index,
            ["name"] = v.Name,
            ["content_hash"] = v.ContentHash,
            ["values"] = new JsonObject([.. v.Values.Select(a => KeyValuePair.Create(a.Path, (JsonNode?)JsonValue.Create(a.Label)))]),
        })]);

    /// <summary>The sweep prepared for submission, or null after printing why it cannot be (every error of the file).</summary>
    private static PreparedSweep? Prepare(CliContext cli, string file)
    {
        try
        {
            var workflows = RepositoryLayout.FindWorkflowsDirectory(file)
                            ?? throw new DirectoryNotFoundException($"no workflows/ folder above {file}: the experiment's workflow template is looked up there");
            return SweepSubmission.Prepare(file, workflows, EngineCli.CodeCommit());
        }
        catch (Exception e) when (e is ValidationException or FileNotFoundException or DirectoryNotFoundException or InvalidOperationException)
        {
            EngineCli.Fail(cli, e);
            return null;
        }
    }

    /// <summary><c>wf submit SWEEP_FILE</c>: the sweep id on standard output, one line per variant on standard error.</summary>
    public static async Task<int> SubmitAsync(CliContext cli, string file, string hub, CancellationToken ct)
    {
        if (Prepare(cli, file) is not { } prepared)
        {
            return ExitCodes.InvalidInput;
        }

        return await EngineCli.WithClient(cli, hub, async client =>
        {
            var id = SweepSubmission.NewSweepId();
            cli.Err.WriteLine($"sweep {id}: {prepared.Variants.Count} variants of {prepared.DisplayFile}");
            var record = await SweepSubmission.SubmitAsync(client, prepared, id, log: cli.Err);
            cli.Out.WriteLine(id);
            return record.Variants.Any(v => v.SubmitError is not null) ? ExitCodes.InvalidInput : ExitCodes.Ok;
        }, ct);
    }

    /// <summary>
    /// <c>wf run SWEEP_FILE</c>: submits every variant and follows them with a worker and a GPU agent in this process,
    /// then writes the comparison under <c>out/sweeps/&lt;sweep&gt;/</c>. Exit 0 only when every variant succeeded.
    /// </summary>
    public static async Task<int> RunAsync(CliContext cli, string file, string hub, CancellationToken ct)
    {
        if (Prepare(cli, file) is not { } prepared)
        {
            return ExitCodes.InvalidInput;
        }

        await using var storage = await StorageSession.OpenAsync(new StorageSessionOptions { Log = cli.Err }, ct);
        var options = EngineCli.Options(hub, file);
        await using var host = await EngineHost.StartAsync(storage.Connection, options,
            (_, services) => Workflows.Cli.GitOps.GitOpsWiring.AddRunFinishedHook(services, storage.Connection, cli.Err));
        using var agentStop = new CancellationTokenSource();
        var agentTask = new GpuAgent(host.Services, host.Steps.GpuJobs, cli.Err).RunAsync(agentStop.Token);
        var id = SweepSubmission.NewSweepId();
        cli.Out.WriteLine($"submitted sweep {id}: {prepared.Variants.Count} variants of {prepared.DisplayFile}");
        var sweep = await SweepSubmission.SubmitAsync(host.Client, prepared, id, log: cli.Out);
        try
        {
            var views = await FollowAsync(cli, host.Client, sweep, ct);
            var folder = Path.Combine("out", "sweeps", id);
            var files = await WriteComparisonAsync(host.Client, sweep, folder, ct);
            PrintSummary(cli, sweep, views, files?.Comparison);
            if (files is not null)
            {
                cli.Out.WriteLine($"comparison: {Path.GetRelativePath(Directory.GetCurrentDirectory(), files.Markdown)} (+ comparison.json, {files.Images.Count} heatmap(s)); again: wf compare {id}");
            }

            return views.All(v => v?.Record.Status == RunStatus.Succeeded) ? ExitCodes.Ok : ExitCodes.InvalidInput;
        }
        catch (OperationCanceledException)
        {
            cli.Out.WriteLine($"detached from sweep {id}; its runs continue whenever a worker runs: 'wf worker' (and 'wf gpu-agent'), then 'wf status {id}'");
            return ExitCodes.Ok;
        }
        finally
        {
            await agentStop.CancelAsync();
            await agentTask;
        }
    }

    /// <summary>A line per variant whenever one of its steps changes; returns every variant's final view (null: never submitted).</summary>
    public static async Task<IReadOnlyList<RunView?>> FollowAsync(CliContext cli, EngineClient client, SweepRecord sweep, CancellationToken ct)
    {
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var views = new List<RunView?>();
            foreach (var variant in sweep.Variants)
            {
                var view = variant.SubmitError is null ? await client.GetAsync(variant.RunId) : null;
                views.Add(view);
                foreach (var (step, p) in view?.Progress?.Steps ?? new Dictionary<string, StepProgress>())
                {
                    var line = $"{variant.Name}: {EngineCli.StepLine(step, p)}";
                    if (!last.TryGetValue(variant.RunId + "/" + step, out var before) || before != line)
                    {
                        last[variant.RunId + "/" + step] = line;
                        cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{watch.Elapsed:hh\\:mm\\:ss}] {line}"));
                    }
                }
            }

            if (views.All(v => v is null || v.IsFinished))
            {
                return views;
            }

            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }
    }

    /// <summary>The comparison of the sweep's variants as files in <paramref name="folder"/>; null when no variant succeeded.</summary>
    public static async Task<ComparisonFiles?> WriteComparisonAsync(EngineClient client, SweepRecord sweep, string folder, CancellationToken ct)
    {
        var runs = await new RunComparisonLoader(client.Store).LoadSweepAsync(sweep, ct);
        if (!runs.Any(r => r.Succeeded))
        {
            return null;
        }

        var baseline = sweep.Baseline is { } b ? runs.FirstOrDefault(r => r.Experiment == b)?.RunId : null;
        return ComparisonMarkdown.Write(folder, new ComparisonInput($"sweep {sweep.Name}", runs, baseline));
    }

    private static void PrintSummary(CliContext cli, SweepRecord sweep, IReadOnlyList<RunView?> views, RunComparison? comparison)
    {
        var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (var h in new[] { "#", "variant", "run", "state", "took", "needle mean", "Δ mean", "effective length", "error" })
        {
            table.AddColumn(h);
        }

        foreach (var (variant, view) in sweep.Variants.Zip(views))
        {
            var row = comparison?.Runs.FirstOrDefault(r => r.RunId == variant.RunId);
            var needle = row?.Needle;
            table.AddRow(
                variant.Index.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(variant.Name),
                Markup.Escape(variant.RunId),
                view?.Record.Status.ToString() ?? "not submitted",
                view?.Record.Duration is { } d ? $"{d.TotalSeconds:0.0}s" : "",
                row?.NeedleDisabled == true ? "disabled" : needle is null ? "" : needle.Mean.ToString("0.000", CultureInfo.InvariantCulture),
                needle?.Delta is { } delta ? delta.ToString("+0.000;-0.000;0.000", CultureInfo.InvariantCulture) : "",
                Markup.Escape(needle?.EffectiveLengthText ?? ""),
                Markup.Escape(view?.Record.Error ?? variant.SubmitError ?? ""));
        }

        cli.Console.Write(table);
    }

    /// <summary><c>wf status SWEEP</c>: every variant with its state, the step it is at, its duration and error.</summary>
    public static async Task<int> PrintStatusAsync(CliContext cli, EngineClient client, SweepRecord sweep, bool json, CancellationToken ct)
    {
        var views = new List<RunView?>();
        foreach (var v in sweep.Variants)
        {
            ct.ThrowIfCancellationRequested();
            views.Add(v.SubmitError is null ? await client.GetAsync(v.RunId) : null);
        }

        if (json)
        {
            cli.Out.WriteLine(JsonSerializer.Serialize(new
            {
                sweep,
                runs = views.Select(v => v is null ? null : new { record = v.Record, orchestration = v.OrchestrationStatus, progress = v.Progress }),
            }, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
            return ExitCodes.Ok;
        }

        cli.Out.WriteLine($"sweep {sweep.SweepId}  {sweep.Name} ({sweep.File})  submitted {sweep.SubmittedAt:u}{(sweep.Baseline is null ? "" : $"  baseline {sweep.Baseline}")}");
        var table = new Table { Border = cli.Colour ? TableBorder.Rounded : TableBorder.Ascii };
        foreach (var h in new[] { "#", "variant", "values", "run", "state", "now", "took", "error" })
        {
            table.AddColumn(h);
        }

        foreach (var (variant, view) in sweep.Variants.Zip(views))
        {
            var running = view?.Progress?.Steps.Where(s => s.Value.State == StepStates.Running).Select(s => EngineCli.StepLine(s.Key, s.Value)).ToList() ?? [];
            table.AddRow(
                variant.Index.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(variant.Name),
                Markup.Escape(variant.DescribeValues()),
                Markup.Escape(variant.RunId),
                view?.Record.Status.ToString() ?? "not submitted",
                Markup.Escape(string.Join("; ", running)),
                view?.Record.Duration is { } d ? $"{d.TotalSeconds:0.0}s" : "",
                Markup.Escape(view?.Record.Error ?? variant.SubmitError ?? ""));
        }

        cli.Console.Write(table);
        var counts = views.GroupBy(v => v?.Record.Status.ToString() ?? "not submitted").Select(g => $"{g.Count()} {g.Key.ToLowerInvariant()}");
        cli.Out.WriteLine($"{sweep.Variants.Count} variants: {string.Join(", ", counts)}. Compare them: wf compare {sweep.SweepId}");
        return ExitCodes.Ok;
    }
}
