using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Workflows.Training.Bench;
using Workflows.Training.Distributed;

namespace Workflows.Cli.Commands;

/// <summary>
/// <c>wf bench train --gpus N</c> (N &gt; 1): ours as N rank processes through <see cref="RankLauncher"/> (the launcher
/// of <c>wf train --gpus N</c>; each rank is <see cref="BenchTrainRank"/>), the twin under torchrun, and unless told
/// otherwise both again on one GPU for the scaling figure. Every run is a process of its own, so each starts on free
/// GPUs; this process never touches a GPU. The report: per GPU and for all GPUs, scaling, MFU, the largest device
/// memory of any rank, the optimizer step, and each rank's own figures.
/// </summary>
internal static class BenchTrainGpus
{
    public static int Run(CliContext cli, BenchShape s, TrainBenchSettings settings, string[] schemes, int gpus, bool single,
        IReadOnlyList<string> rankArguments, bool json)
    {
        var log = json ? cli.Err : cli.Out;
        string transport = s.IsCuda ? "NCCL" : "the TCP test transport";
        log.WriteLine(BenchTrainCommand.Describe(s, settings, $"{gpus} ranks ({(s.IsCuda ? $"GPUs 0..{gpus - 1}" : "CPU processes")}, {transport})"));
        log.WriteLine(single
            ? "1-GPU runs: measured in this command, each side in a process of its own; scaling = N-GPU tokens/s / 1-GPU tokens/s"
            : "1-GPU runs: not measured (--no-single), so there is no scaling figure");

        // The twin first: its processes end (and free the GPUs) before ours allocate.
        var errors = new List<string>();
        var twin = BenchTwinRunner.Start(cli, s, log, errors);
        var twinSingle = new Dictionary<string, JsonObject>();
        var twinGroup = new Dictionary<string, JsonObject>();
        foreach (var scheme in twin is null ? [] : schemes)
        {
            if (single && twin!.Train(settings, scheme) is { } one) twinSingle[scheme] = one;
            if (twin!.Train(settings, scheme, gpus) is { } all) twinGroup[scheme] = all;
        }

        var oursSingle = single ? Launch(cli, rankArguments, 1, errors) : null;
        var oursGroup = Launch(cli, rankArguments, gpus, errors);

        double? oursPeak = oursGroup.Concat(oursSingle ?? []).Max(r => r?.PeakFlops);
        double peakUsed = Math.Max(oursPeak ?? 0, twin?.PeakFlops ?? 0);
        double? Mfu(double? tokensPerSecondPerGpu, double perToken) => tokensPerSecondPerGpu is double t && peakUsed > 0 ? t * perToken / peakUsed : null;
        static double? Ratio(JsonNode? a, JsonNode? b) => a?.GetValue<double>() is double x && b?.GetValue<double>() is double y && y > 0 ? x / y : null;

        var rows = new JsonArray();
        foreach (int c in settings.Contexts)
        {
            double flops = BenchModels.TrainingFlopsPerToken(settings.Model, c), flopsPalm = BenchModels.TrainingFlopsPerToken(settings.Model, c, palm: true);
            JsonObject WithMfu(JsonObject j)
            {
                j["mfu"] = Mfu(j["implied_tokens_per_s_per_gpu"]?.GetValue<double>(), flops);
                j["mfu_palm"] = Mfu(j["implied_tokens_per_s_per_gpu"]?.GetValue<double>(), flopsPalm);
                return j;
            }

            var oursAll = WithMfu(GroupJson(TrainBenchGroupResult.Combine(settings, c, oursGroup)));
            var oursOne = oursSingle is null ? null : WithMfu(GroupJson(TrainBenchGroupResult.Combine(settings, c, oursSingle)));
            var oursJson = new JsonObject
            {
                ["gpus"] = oursAll,
                ["single"] = oursOne,
                ["scaling"] = Ratio(oursAll["implied_tokens_per_s"], oursOne?["implied_tokens_per_s"]),
                ["micro_batch_scaling"] = Ratio(oursAll["tokens_per_s"], oursOne?["tokens_per_s"]),
            };
            errors.AddRange(new[] { oursAll, oursOne }.OfType<JsonObject>().Where(j => j["error"] is not null)
                .Select(j => $"ours on {j["ranks"]} GPU(s) at {c}: {j["error"]}"));

            var twinJson = new JsonObject();
            foreach (var scheme in schemes)
            {
                var all = TwinContext(twinGroup, scheme, c) is { } g ? WithMfu(g) : null;
                var one = TwinContext(twinSingle, scheme, c) is { } o ? WithMfu(PerGpuAlone(o)) : null;
                if (all is null && one is null) continue;
                twinJson[scheme] = new JsonObject
                {
                    ["gpus"] = all,
                    ["single"] = one,
                    ["scaling"] = Ratio(all?["implied_tokens_per_s"], one?["implied_tokens_per_s"]),
                    ["micro_batch_scaling"] = Ratio(all?["tokens_per_s"], one?["tokens_per_s"]),
                };
                oursJson[$"ratio_vs_{scheme}"] = Ratio(oursAll["implied_tokens_per_s"], all?["implied_tokens_per_s"]);
                oursJson[$"micro_batch_ratio_vs_{scheme}"] = Ratio(oursAll["tokens_per_s"], all?["tokens_per_s"]);
            }
            rows.Add(new JsonObject { ["context"] = c, ["flops_per_token"] = flops, ["flops_per_token_palm"] = flopsPalm, ["ours"] = oursJson, ["twin"] = twinJson });
        }

        var report = BenchTrainCommand.ReportHeader(s, settings, twin?.TorchVersion,
            new JsonObject { ["matmul"] = s.PeakDescription, ["ours_flops"] = oursPeak, ["twin_flops"] = twin?.PeakFlops, ["used_flops"] = peakUsed });
        report["gpus"] = gpus;
        report["single_gpu_measured"] = single;
        report["ours_parallelism"] = $"ZeRO-2 over {transport}: whole {BenchTrainCommand.PrecisionName(settings)} parameters on every rank, fp32 gradients and optimizer state sharded";
        report["twin_parallelism"] = "FSDP2 (fully_shard per block and the root, reshard_after_forward=False), torchrun";
        report["contexts"] = rows;
        report["errors"] = new JsonArray(errors.Select(e => (JsonNode?)e).ToArray());
        int exit = errors.Count == 0 ? ExitCodes.Ok : ExitCodes.InvalidInput;
        if (json)
            cli.Out.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        else
            Print(cli, settings, gpus, single, peakUsed, twin?.TorchVersion, rows, errors);
        return exit;
    }

    /// <summary>Runs our side on <paramref name="ranks"/> rank processes and collects what each wrote.</summary>
    static IReadOnlyList<TrainBenchRankReport?> Launch(CliContext cli, IReadOnlyList<string> rankArguments, int ranks, List<string> errors)
    {
        string folder = Directory.CreateTempSubdirectory("wf-bench-ranks-").FullName;
        try
        {
            var outcome = RankLauncher.Launch([.. rankArguments, "--rank-results", folder], ranks, cli.Err, cli.Err, CancellationToken.None,
                NcclCollectives.MulticastOff);
            var reports = Enumerable.Range(0, ranks).Select(r => TrainBenchRankReport.Read(folder, r)).ToList();
            if (outcome.ExitCode != 0)
            {
                string? own = outcome.FailedRank is int failed ? reports[failed]?.Error : null;
                errors.Add($"ours on {ranks} GPU(s): {outcome.Failure ?? "a rank failed"}{(own is null ? "" : $" (rank {outcome.FailedRank}: {own})")}");
            }
            return reports;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    static JsonObject GroupJson(TrainBenchGroupResult g) => new()
    {
        ["ranks"] = g.Ranks,
        ["tokens"] = g.Tokens,
        ["tokens_per_s"] = g.TokensPerSecond,
        ["tokens_per_s_per_gpu"] = g.TokensPerSecondPerGpu,
        ["micro_batch_s"] = g.MicroBatchSeconds,
        ["optimizer_step_s"] = g.OptimizerStepSeconds,
        ["implied_tokens_per_s"] = g.ImpliedTokensPerSecond,
        ["implied_tokens_per_s_per_gpu"] = g.ImpliedTokensPerSecondPerGpu,
        ["device_used_bytes"] = g.DeviceMemoryUsed,
        ["device_total_bytes"] = g.DeviceMemoryTotal,
        ["max_memory_allocated"] = g.PeakAllocated,
        ["max_memory_reserved"] = g.PeakReserved,
        ["loss_first"] = g.FirstLoss,
        ["loss_last"] = g.LastLoss,
        ["error"] = g.Error,
        ["per_rank"] = new JsonArray(g.PerRank.Select((r, rank) =>
        {
            var row = BenchTrainCommand.ContextJson(r, "not reported");
            row.Insert(0, "rank", rank);
            return (JsonNode?)row;
        }).ToArray()),
    };

    static JsonObject? TwinContext(Dictionary<string, JsonObject> runs, string scheme, int context) =>
        runs.TryGetValue(scheme, out var run)
            ? (run["contexts"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(x => x["context"]?.GetValue<int>() == context)?.DeepClone().AsObject()
            : null;

    // The single-GPU twin prints per-process figures: on one GPU they are also the per-GPU ones.
    static JsonObject PerGpuAlone(JsonObject j)
    {
        j["ranks"] = 1;
        j["tokens_per_s_per_gpu"] = j["tokens_per_s"]?.DeepClone();
        j["implied_tokens_per_s_per_gpu"] = j["implied_tokens_per_s"]?.DeepClone();
        return j;
    }

    static void Print(CliContext cli, TrainBenchSettings settings, int gpus, bool single, double peakUsed, string? torch, JsonArray rows, List<string> errors)
    {
        cli.Out.WriteLine($"MFU is against {BenchFormat.Flops(peakUsed)} per GPU (the higher matmul peak of the two sides)");
        foreach (JsonObject row in rows.Cast<JsonObject>())
        {
            var ours = (JsonObject)row["ours"]!;
            var twin = (JsonObject)row["twin"]!;
            var columns = new List<(string Header, JsonObject? Figures)> { ($"ours, {gpus} GPUs", ours["gpus"] as JsonObject) };
            if (single) columns.Add(("ours, 1 GPU", ours["single"] as JsonObject));
            foreach (var (scheme, node) in twin)
            {
                columns.Add(($"twin (PyTorch {torch}, {scheme}), {gpus} GPUs", node!["gpus"] as JsonObject));
                if (single) columns.Add(($"twin ({scheme}), 1 GPU", node["single"] as JsonObject));
            }
            var table = new Table().Title($"context {row["context"]!.GetValue<int>():N0}").AddColumn("");
            foreach (var (header, _) in columns) table.AddColumn(new TableColumn(header).RightAligned());
            void Row(string name, Func<JsonObject, string> value) =>
                table.AddRow([name, .. columns.Select(col => col.Figures is null ? "n/a" : Markup.Escape(value(col.Figures)))]);
            Row("tokens/s per GPU (micro-batch)", j => BenchFormat.N0(j, "tokens_per_s_per_gpu", orError: true));
            Row("tokens/s, all GPUs (micro-batch)", j => BenchFormat.N0(j, "tokens_per_s"));
            Row("optimizer step", j => BenchFormat.Seconds(j, "optimizer_step_s"));
            Row($"tokens/s at {settings.BatchTokens:N0} tokens/step, all GPUs", j => BenchFormat.N0(j, "implied_tokens_per_s"));
            Row("MFU (6N + 6·L·d·T)", j => BenchFormat.Percent(j, "mfu"));
            Row("device memory in use, largest rank", j => BenchFormat.Bytes(j, "device_used_bytes"));
            Row("peak allocated / reserved, largest rank", BenchFormat.Peaks);
            Row("loss first → last", BenchFormat.Losses);
            cli.Console.Write(table);

            string Scaling(JsonObject? side) => side?["scaling"] is JsonNode sc
                ? string.Create(CultureInfo.InvariantCulture, $"{sc.GetValue<double>():0.00}x (per micro-batch {side["micro_batch_scaling"]?.GetValue<double>():0.00}x)")
                : single ? "n/a (a run failed)" : "not measured (--no-single)";
            cli.Out.WriteLine($"scaling, {gpus} GPUs / 1 GPU at {settings.BatchTokens:N0} tokens per step: ours {Scaling(ours)}"
                + string.Concat(twin.Select(kv => $", twin ({kv.Key}) {Scaling(kv.Value as JsonObject)}")));
            foreach (var (scheme, _) in twin)
                if (ours[$"ratio_vs_{scheme}"] is JsonNode r)
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"ours / twin ({scheme}) on {gpus} GPUs at {settings.BatchTokens:N0} tokens per step: {r.GetValue<double>():0.000}x; per micro-batch: {ours[$"micro_batch_ratio_vs_{scheme}"]?.GetValue<double>():0.000}x"));

            var ranks = new Table().AddColumns("ours, rank", "tokens", "tokens/s", "micro-batch", "optimizer step", "device memory in use", "allocated / reserved");
            foreach (JsonObject r in ((JsonArray)((JsonObject)ours["gpus"]!)["per_rank"]!).Cast<JsonObject>())
                ranks.AddRow(r["rank"]!.ToString(), r["tokens"]?.ToString() ?? "n/a", Markup.Escape(BenchFormat.N0(r, "tokens_per_s", orError: true)),
                    BenchFormat.Seconds(r, "micro_batch_s"), BenchFormat.Seconds(r, "optimizer_step_s"), BenchFormat.Bytes(r, "device_used_bytes"), BenchFormat.Peaks(r));
            cli.Console.Write(ranks);
        }
        foreach (var e in errors) cli.Err.WriteLine($"error: {e}");
    }
}
