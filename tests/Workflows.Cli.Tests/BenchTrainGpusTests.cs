using System.Diagnostics;
using System.Text.Json.Nodes;
using Workflows.Cli.Commands;

using static Workflows.Cli.Tests.DataParallelTrainingTests;

namespace Workflows.Cli.Tests;

/// <summary>
/// wf bench train --gpus N on the CPU: real rank processes of wf over the TCP test transport (NCCL's stand-in), the
/// same launcher as wf train --gpus N. The GPU numbers themselves come from the command in docs/benchmarks.md.
/// </summary>
public sealed class BenchTrainGpusTests
{
    // Tiny model, context 32, micro-batches of 1 sequence, 2 timed rounds; 128 tokens per step = 4 micro-batches.
    private static string[] Tiny(int timedMicroBatches = 2) =>
    [
        "bench", "train", "--preset", "tiny", "--device", "cpu", "--threads", "1", "--peak-size", "64", "--context", "32",
        "--micro-batch", "1", "--warmup", "1", "--micro-batches", $"{timedMicroBatches}", "--optimizer-steps", "1", "--batch-tokens", "128",
    ];

    private static double D(JsonNode? node) => node!.GetValue<double>();

    [Fact]
    public void Two_ranks_report_each_rank_the_group_and_the_scaling_against_one_rank()
    {
        var run = Process(TimeSpan.FromMinutes(2), null, [.. Tiny(), "--gpus", "2", "--no-twin", "--json"]);
        run.Exit.Should().Be(ExitCodes.Ok, run.Err);
        var report = JsonNode.Parse(run.Out)!;
        report["gpus"]!.GetValue<int>().Should().Be(2);
        report["single_gpu_measured"]!.GetValue<bool>().Should().BeTrue();
        report["errors"]!.AsArray().Should().BeEmpty();
        run.Err.Should().Contain("[rank 1] ours: context 32", "rank 1 is a process of its own, its progress prefixed by the launcher");

        var ours = report["contexts"]![0]!["ours"]!;
        var group = ours["gpus"]!;
        var single = ours["single"]!;
        var ranks = group["per_rank"]!.AsArray();
        ranks.Select(r => r!["rank"]!.GetValue<int>()).Should().Equal(0, 1);
        foreach (var rank in ranks)
        {
            // The trainer counts what each rank ran: one micro-batch of 32 tokens per round, 2 timed rounds.
            rank!["tokens"]!.GetValue<long>().Should().Be(64, "rank r runs micro-batch r of each round, not all of them");
            D(rank["tokens_per_s"]).Should().BePositive();
            D(rank["optimizer_step_s"]).Should().BePositive();
        }
        group["tokens"]!.GetValue<long>().Should().Be(2 * ranks[0]!["tokens"]!.GetValue<long>())
            .And.Be(2 * single["tokens"]!.GetValue<long>(), "the same rounds on two ranks run twice the tokens of one");

        // The group is as fast as its slowest rank; per GPU is the total over 2.
        double round = ranks.Max(r => D(r!["micro_batch_s"]));
        D(group["micro_batch_s"]).Should().Be(round);
        D(group["tokens_per_s"]).Should().BeApproximately(128 / (2 * round), 1e-6 * D(group["tokens_per_s"]));
        D(group["tokens_per_s_per_gpu"]).Should().BeApproximately(D(group["tokens_per_s"]) / 2, 1e-9 * D(group["tokens_per_s"]));
        // 128 tokens per step = 4 micro-batches: 2 rounds on two ranks, 4 on one, then one optimizer step.
        double step = D(group["optimizer_step_s"]);
        D(group["implied_tokens_per_s"]).Should().BeApproximately(128 / (2 * round + step), 1e-6 * D(group["implied_tokens_per_s"]));
        D(single["implied_tokens_per_s"]).Should().BeApproximately(128 / (4 * D(single["micro_batch_s"]) + D(single["optimizer_step_s"])), 1e-6 * D(single["implied_tokens_per_s"]));
        D(ours["scaling"]).Should().BeApproximately(D(group["implied_tokens_per_s"]) / D(single["implied_tokens_per_s"]), 1e-9);
        D(ours["micro_batch_scaling"]).Should().BePositive();
        D(group["mfu"]).Should().BePositive();

        // The ranks really reduced together: each reports the loss averaged over both ranks' sequences, which is
        // not the loss of the one sequence the single run saw.
        D(ranks[0]!["loss_first"]).Should().Be(D(ranks[1]!["loss_first"]));
        D(ranks[0]!["loss_first"]).Should().NotBe(D(single["loss_first"]));
    }

    [Fact]
    public void Two_ranks_at_zero_stage_3_measure_the_losses_of_stage_2()
    {
        // The same seed, data and rounds: stage 3 only moves where the parameters live, so the fp32 losses agree.
        var stage2 = Process(TimeSpan.FromMinutes(2), null, [.. Tiny(), "--gpus", "2", "--no-twin", "--no-single", "--json"]);
        var stage3 = Process(TimeSpan.FromMinutes(2), null, [.. Tiny(), "--gpus", "2", "--no-twin", "--no-single", "--zero-stage", "3", "--json"]);
        stage2.Exit.Should().Be(ExitCodes.Ok, stage2.Err);
        stage3.Exit.Should().Be(ExitCodes.Ok, stage3.Err);
        var (two, three) = (JsonNode.Parse(stage2.Out)!, JsonNode.Parse(stage3.Out)!);
        three["zero_stage"]!.GetValue<int>().Should().Be(3);
        stage3.Err.Should().Contain("[rank 1] ours: model built").And.Contain("ZeRO stage 3: this rank keeps");
        stage2.Err.Should().NotContain("ZeRO stage 3");
        two["zero_stage"]!.GetValue<int>().Should().Be(2);
        var ranks2 = two["contexts"]![0]!["ours"]!["gpus"]!["per_rank"]!.AsArray();
        var ranks3 = three["contexts"]![0]!["ours"]!["gpus"]!["per_rank"]!.AsArray();
        foreach (var key in new[] { "loss_first", "loss_last" })
            D(ranks3[0]![key]).Should().Be(D(ranks2[0]![key]), key);
    }

    [Fact]
    public void A_twin_that_cannot_start_is_an_error_and_ours_is_reported_anyway()
    {
        var run = Process(TimeSpan.FromMinutes(2), null, [.. Tiny(), "--gpus", "2", "--no-single", "--python", "/nonexistent/python3", "--json"]);
        run.Exit.Should().Be(ExitCodes.InvalidInput, run.Err);
        var report = JsonNode.Parse(run.Out)!;
        report["single_gpu_measured"]!.GetValue<bool>().Should().BeFalse();
        report["errors"]!.AsArray().Select(e => e!.GetValue<string>()).Should().ContainSingle().Which.Should().Contain("twin").And.Contain("/nonexistent/python3");
        var ours = report["contexts"]![0]!["ours"]!;
        ours["gpus"]!["tokens"]!.GetValue<long>().Should().Be(128);
        ours["single"].Should().BeNull();
        ours["scaling"].Should().BeNull("no 1-GPU run, no scaling");
    }

    [Fact]
    public void A_rank_that_dies_fails_the_command_within_seconds_naming_it()
    {
        var clock = new Stopwatch();
        int? victim = null;
        // Enough timed micro-batches to outlast the kill by minutes; rank 1 is killed once it has built its model.
        var run = Process(TimeSpan.FromMinutes(3), (process, line) =>
        {
            if (victim is not null || !line.StartsWith("[rank 1] ours: model built", StringComparison.Ordinal)) return;
            var child = Children(process.Id).FirstOrDefault(pid => DataParallelTrainingTests.Environment(pid).Contains("RANK=1\0", StringComparison.Ordinal));
            if (child == 0) return;
            victim = child;
            clock.Start();
            System.Diagnostics.Process.GetProcessById(child).Kill();
        }, [.. Tiny(timedMicroBatches: 1_000_000), "--gpus", "2", "--no-twin", "--no-single"]);
        clock.Stop();

        victim.Should().NotBeNull("rank 1 was found and killed");
        run.Exit.Should().Be(ExitCodes.InvalidInput, run.Err);
        run.Err.Should().Contain("error: ours on 2 GPU(s): rank 1 of 2 exited with code").And.Contain("the other ranks were stopped");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "the group fails when a peer's connection closes, not at the collective timeout");
    }
}
