using System.Diagnostics;
using Workflows.Cli.Commands;
using Workflows.Training.Weights;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// wf train --gpus N with real rank processes on the CPU (the TCP test transport stands in for NCCL): the same global
/// batch gives the weights of one process, a sharded checkpoint resumes at another number of ranks, and a rank that
/// dies fails the whole group within seconds.
/// </summary>
public sealed class DataParallelTrainingTests : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("wf-ddp-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    /// <summary>fp32, 2 layers, 6 sequences of 128 per step in micro-batches of 1 (so 3 ranks get 2 each, 4 ranks uneven).</summary>
    private string Experiment(int steps, string name = "ddp-run", bool activationCheckpointing = true, string precision = "fp32", string? baseModel = null)
    {
        // Beside the experiment: outside a repository an experiment may only name paths in its own folder (path policy).
        var sample = Path.Combine(temp, "sample.jsonl.zst");
        if (!File.Exists(sample))
        {
            File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), sample);
        }

        sample = sample.Replace("\\", "/", StringComparison.Ordinal);
        var path = Path.Combine(temp, $"{name}-{steps}.yaml");
        File.WriteAllText(path, $$"""
            name: {{name}}
            profile: smoke
            model:
              {{(baseModel is null ? "base: tiny\n  architecture: { layers: 2, hidden_size: 64, heads: 4, kv_heads: 2, intermediate_size: 128 }" : $"base: {baseModel}")}}
            data:
              paths: ["{{sample}}"]
              mix: { Book: 0.5, Github: 0.5 }
              upsampling: { mode: none }
              token_budget: 16K
              context: 128
              tokenizer: gpt2
            training:
              lr: 1.0e-3
              weight_decay: 0.1
              batch_tokens: 768
              micro_batch: 1
              precision: {{precision}}
              max_steps: {{steps}}
              checkpoint_interval: 2
              activation_checkpointing: {{(activationCheckpointing ? "true" : "false")}}
            evaluation:
              needle: { enabled: false }
              domain_loss: { enabled: false }
            resources: { gpu: cpu, gpu_count: 1 }
            """);
        return path;
    }

    private string Data()
    {
        var data = Path.Combine(temp, "data");
        if (!Directory.Exists(data)) Wf("prep", Experiment(4), "--out", data, "--threads", "1").Exit.Should().Be(ExitCodes.Ok);
        return data;
    }

    internal static (int Exit, string Out, string Err) Process(TimeSpan limit, Action<System.Diagnostics.Process, string>? onLine, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(WorkerProcessTests.WfDll());
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["WF_COLLECTIVE_TIMEOUT"] = "60";
        using var process = System.Diagnostics.Process.Start(info)!;
        var output = new System.Text.StringBuilder();
        var error = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (output) output.AppendLine(e.Data); onLine?.Invoke(process, e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is null) return; lock (error) error.AppendLine(e.Data); onLine?.Invoke(process, e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"wf {string.Join(' ', args)} did not finish within {limit}: {output}{error}");
        }
        process.WaitForExit();
        return (process.ExitCode, output.ToString(), error.ToString());
    }

    internal static Dictionary<string, float[]> Weights(string trainFolder)
    {
        using var model = HuggingFaceCheckpoint.LoadModel(Path.Combine(trainFolder, "final-model"));
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
    }

    internal static void ShouldMatch(Dictionary<string, float[]> actual, Dictionary<string, float[]> expected, string because)
    {
        actual.Keys.Should().BeEquivalentTo(expected.Keys);
        double sum = 0, max = 0;
        long count = 0;
        foreach (var (name, values) in expected)
            for (int i = 0; i < values.Length; i++)
            {
                double d = Math.Abs(values[i] - actual[name][i]);
                (sum, max, count) = (sum + d, Math.Max(max, d), count + 1);
            }
        // Gradients are summed in another order (per rank, then across ranks), so float32 rounding differs; Adam
        // normalises near-zero gradients, so a few elements move by a visible fraction of lr (1e-3) and the rest agree.
        max.Should().BeLessThan(2e-4, because);
        (sum / count).Should().BeLessThan(1e-6, because);
    }

    [Fact]
    public void Two_and_three_ranks_train_the_weights_of_one_process_and_a_sharded_checkpoint_resumes_at_another_count()
    {
        var (pair, _) = TrainLikeOneProcess("stage 2");
        pair.Should().Contain("(rank 0 of 2)").And.NotContain("ZeRO stage 3");
    }

    [Fact]
    public void Stage_3_ranks_keep_a_shard_of_the_parameters_train_the_weights_of_one_process_and_resume_at_another_count()
    {
        var (pair, reference) = TrainLikeOneProcess("stage 3", "--zero-stage", "3");

        // Rank 0 held its shard (half the flat space) and at most one group at a time: the largest of the embedding,
        // a block, and the final norm with the head (gathered together for the loss; the tiny model ties the head to
        // the embedding) — never the whole model.
        long Count(string name) => reference[name].LongLength;
        long total = reference.Values.Sum(v => v.LongLength);
        long largestBlock = reference.Keys.Where(k => k.StartsWith("model.layers.", StringComparison.Ordinal))
            .GroupBy(k => k.Split('.')[2]).Max(g => g.Sum(Count));
        long largestGroup = new[] { Count("model.embed_tokens.weight"), largestBlock, Count("model.norm.weight") + Count(reference.ContainsKey("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight") }.Max();
        var held = System.Text.RegularExpressions.Regex.Match(pair, @"rank 0 held at most (\d+) parameter elements");
        held.Success.Should().BeTrue(pair);
        long.Parse(held.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)
            .Should().Be(((total + 1) / 2) + largestGroup, $"{total} parameters: a shard of {(total + 1) / 2} and the largest group, {largestGroup}");
    }

    /// <summary>
    /// One process, then 2 ranks, then 3 ranks for 2 steps (a sharded checkpoint) resumed by 2 ranks to step 4, all with
    /// <paramref name="stage"/> options: both multi-rank runs must end at one process's weights. Returns the 2-rank run's
    /// output and the reference weights.
    /// </summary>
    private (string PairOutput, Dictionary<string, float[]> Reference) TrainLikeOneProcess(string label, params string[] stage)
    {
        var data = Data();
        string one = Path.Combine(temp, "one"), two = Path.Combine(temp, "two"), three = Path.Combine(temp, "three");
        var single = Wf("train", Experiment(4), "--data", data, "--out", one);
        single.Exit.Should().Be(ExitCodes.Ok, single.Err);
        var reference = Weights(one);

        var pair = Process(TimeSpan.FromMinutes(4), null, ["train", Experiment(4), "--data", data, "--out", two, "--gpus", "2", .. stage]);
        pair.Exit.Should().Be(0, pair.Err + pair.Out);
        pair.Out.Should().Contain("finished 4 steps");
        ShouldMatch(Weights(two), reference, $"{label}: 2 ranks, micro-batches 0,2,4 and 1,3,5 of each step");
        File.ReadAllLines(Path.Combine(two, "metrics.jsonl")).Should().HaveCount(4, "rank 0 writes the metrics, one line per step");

        var first = Process(TimeSpan.FromMinutes(4), null, ["train", Experiment(2), "--data", data, "--out", three, "--gpus", "3", .. stage]);
        first.Exit.Should().Be(0, first.Err + first.Out);
        Directory.GetFiles(Path.Combine(three, "checkpoints", "checkpoint-2"), "optimizer-shard-*").Should().HaveCount(3);
        var resumed = Process(TimeSpan.FromMinutes(4), null, ["train", Experiment(4), "--data", data, "--out", three, "--gpus", "2", "--resume", .. stage]);
        resumed.Exit.Should().Be(0, resumed.Err + resumed.Out);
        resumed.Out.Should().Contain("finished 4 steps");
        ShouldMatch(Weights(three), reference, $"{label}: written by 3 ranks, resumed by 2");
        File.ReadAllLines(Path.Combine(three, "metrics.jsonl")).Should().HaveCount(4);
        return (pair.Out, reference);
    }

    [Fact]
    public void Stage_3_ranks_continue_from_a_base_model_as_one_process_does()
    {
        // A base model (a trained tiny model in HF layout, beside the experiment as the path policy asks) streams into
        // each rank's master weights and shard; the ranks then train to one process's weights.
        var data = Data();
        var trained = Path.Combine(temp, "base-run");
        Wf("train", Experiment(2, "base-source"), "--data", data, "--out", trained).Exit.Should().Be(ExitCodes.Ok);
        Directory.Move(Path.Combine(trained, "final-model"), Path.Combine(temp, "base-model"));
        var experiment = Experiment(2, "from-base", baseModel: "./base-model");
        string one = Path.Combine(temp, "base-one"), two = Path.Combine(temp, "base-two");
        var single = Wf("train", experiment, "--data", data, "--out", one);
        single.Exit.Should().Be(ExitCodes.Ok, single.Err);
        var pair = Process(TimeSpan.FromMinutes(4), null, "train", experiment, "--data", data, "--out", two, "--gpus", "2", "--zero-stage", "3");
        pair.Exit.Should().Be(0, pair.Err + pair.Out);
        pair.Out.Should().Contain("ZeRO stage 3: rank 0 held at most");
        ShouldMatch(Weights(two), Weights(one), "stage 3 from a base model (a rank that drew a random init instead would be far off)");
    }

    [Fact]
    public void Stage_3_in_bf16_takes_the_steps_of_stage_2_bit_for_bit()
    {
        // Same ranks, same reductions in the same order, and the gathered bf16 parameters are the values stage 2's
        // all-gather gives every rank: only where the parameters live differs, so the weights must agree exactly.
        var data = Data();
        string two = Path.Combine(temp, "bf16-stage2"), three = Path.Combine(temp, "bf16-stage3");
        var experiment = Experiment(2, "bf16", precision: "bf16");
        var stage2 = Process(TimeSpan.FromMinutes(4), null, "train", experiment, "--data", data, "--out", two, "--gpus", "2");
        stage2.Exit.Should().Be(0, stage2.Err + stage2.Out);
        var stage3 = Process(TimeSpan.FromMinutes(4), null, "train", experiment, "--data", data, "--out", three, "--gpus", "2", "--zero-stage", "3");
        stage3.Exit.Should().Be(0, stage3.Err + stage3.Out);
        stage3.Out.Should().Contain("ZeRO stage 3: rank 0 held at most");
        var expected = Weights(two);
        var actual = Weights(three);
        actual.Keys.Should().BeEquivalentTo(expected.Keys);
        foreach (var (name, values) in expected) actual[name].Should().Equal(values, name);
        File.ReadAllText(Path.Combine(three, "metrics.jsonl")).Split('\n').Select(l => l.Split("\"tokens_per_s\"")[0])
            .Should().Equal(File.ReadAllText(Path.Combine(two, "metrics.jsonl")).Split('\n').Select(l => l.Split("\"tokens_per_s\"")[0]), "the same losses and gradient norms");
    }

    [Fact]
    public void Stage_3_without_activation_checkpointing_is_refused_with_the_setting_to_change()
    {
        var data = Data();
        var run = Wf("train", Experiment(4, "no-recompute", activationCheckpointing: false), "--data", data, "--out", Path.Combine(temp, "refused"), "--zero-stage", "3");
        run.Exit.Should().Be(ExitCodes.InvalidInput);
        run.Err.Should().Contain("ZeRO stage 3 needs activation checkpointing").And.Contain("training.activation_checkpointing: true");
        Directory.Exists(Path.Combine(temp, "refused")).Should().BeFalse("nothing ran");
    }

    [Fact]
    public void Bench_collectives_checks_every_collective_on_three_ranks_and_reports_each()
    {
        var run = Process(TimeSpan.FromMinutes(2), null, "bench", "collectives", "--device", "cpu", "--gpus", "3", "--sizes", "0.25,1", "--iterations", "1");
        run.Exit.Should().Be(0, run.Err + run.Out);
        var rows = run.Out.Split('\n').Where(l => l.StartsWith("all-", StringComparison.Ordinal) || l.StartsWith("broadcast", StringComparison.Ordinal)).ToList();
        rows.Should().HaveCount(6, "three operations at two sizes: " + run.Out);
        rows.Should().OnlyContain(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2] == "yes", "every element checked on every rank");
        run.Out.Should().Contain("3 rank(s)");
    }

    [Fact]
    public void A_rank_that_dies_fails_the_group_within_seconds_naming_it()
    {
        var data = Data();
        var clock = new Stopwatch();
        int? victim = null;
        var run = Process(TimeSpan.FromMinutes(4), (process, line) =>
        {
            // Once rank 0 reports its first step, kill rank 1 (a child of the launcher) the hard way.
            if (victim is not null || !line.StartsWith("step 1/", StringComparison.Ordinal)) return;
            var child = Children(process.Id).Select(pid => (pid, env: Environment(pid))).FirstOrDefault(c => c.env.Contains("RANK=1\0"));
            if (child.pid == 0) return;
            victim = child.pid;
            clock.Start();
            System.Diagnostics.Process.GetProcessById(child.pid).Kill();
        }, "train", Experiment(40), "--data", data, "--out", Path.Combine(temp, "killed"), "--gpus", "2");
        clock.Stop();

        victim.Should().NotBeNull("rank 1 was found and killed");
        run.Exit.Should().Be(ExitCodes.InvalidInput);
        run.Err.Should().Contain("rank 1 of 2 exited").And.Contain("the other ranks were stopped");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "the group fails when a peer's connection closes, not at the collective timeout");
    }

    internal static IEnumerable<int> Children(int parent) =>
        Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => int.TryParse(n, out _)).Select(int.Parse!)
            .Where(pid =>
            {
                try
                {
                    var stat = File.ReadAllText($"/proc/{pid}/stat");
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    return int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == parent;
                }
                catch (IOException)
                {
                    return false;
                }
            });

    internal static string Environment(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/environ");
        }
        catch (IOException)
        {
            return "";
        }
    }
}
