using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Validation;
using Workflows.Training;
using Workflows.Training.Data;
using Workflows.Training.Distributed;
using Workflows.Training.Loop;

namespace Workflows.Cli.Commands;

public static class TrainCommand
{
    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment file (model and training sections)." };
        var data = new Option<string>("--data") { Description = "A data-prep output folder (holding manifest.json), e.g. from 'wf prep'.", Required = true };
        var output = new Option<string>("--out") { Description = "Output folder: metrics.jsonl, checkpoints/, final-model/ (HuggingFace layout).", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue from the newest complete checkpoint in --out." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N (CUDA needs the machine's libtorch on LD_LIBRARY_PATH; see docs/training.md).", DefaultValueFactory = _ => "cpu" };
        var gpus = new Option<int>("--gpus") { Description = "Data-parallel ranks on this machine, one process each (like torchrun --nproc_per_node): GPUs 0..N-1 with --device cuda (NCCL); with --device cpu, CPU processes over the TCP test transport.", DefaultValueFactory = _ => 1 };
        var zeroStage = new Option<int?>("--zero-stage") { Description = "With --gpus N: 2 shards gradients and optimizer state, 3 the parameters too (gathered block by block; needs activation checkpointing). Default: the memory plan's choice on GPUs, 2 on the CPU." };
        var command = new Command("train", """
            Continual pretraining without the engine: build (or load) the experiment's LLaMA model, stream the packed
            sequences of a data-prep output, and train with AdamW, gradient accumulation, clipping and checkpoints.
            Ctrl-C or SIGTERM writes a checkpoint and stops; --resume continues bit-identically.

            Examples:
              wf prep experiments/smoke.yaml --out out/smoke-data
              wf train experiments/smoke.yaml --data out/smoke-data --out out/smoke-train
              wf train experiments/smoke.yaml --data out/smoke-data --out out/smoke-train --resume
              wf train experiments/per-source-5b-80k.yaml --data out/data --out out/train --device cuda --gpus 8

            With --gpus N, wf starts N rank processes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set as
            torchrun sets them), streams rank 0's output and fails the whole group when one rank fails. Gradients
            and optimizer state are sharded over the ranks (ZeRO stage 2); with --zero-stage 3 (or when the memory
            plan needs it) the parameters too. A run resumes at any number of ranks.
            """)
        {
            file, data, output, resume, device, gpus, zeroStage,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return ExitCodes.InvalidInput;
            }

            // The launcher: this process starts the ranks and watches them; each rank runs this command again.
            RankEnvironment? rank;
            try
            {
                rank = RankEnvironment.FromEnvironment();
            }
            catch (InvalidOperationException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
            // Several machines (NNODES) start the launcher even with one GPU each: it numbers the ranks node by node.
            bool nodes = int.TryParse(Environment.GetEnvironmentVariable("NNODES"), out int nnodes) && nnodes > 1;
            if (parse.GetValue(gpus) is var ranks && (ranks > 1 || nodes) && rank is null)
            {
                using var stop = new CancellationTokenSource();
                using (TrainingRunner.CancelOnTermination(stop))
                    return RankLauncher.Run(WithoutOption(Environment.GetCommandLineArgs().Skip(1), "--gpus"), ranks, cli.Out, cli.Err, stop.Token) == 0
                        ? ExitCodes.Ok : ExitCodes.InvalidInput;
            }

            PackedShardSequenceSource source;
            TrainingJob job;
            try
            {
                source = new PackedShardSequenceSource(parse.GetValue(data)!);
                if (source.Context != spec.Data.Context)
                {
                    cli.Err.WriteLine($"error: the data is packed at {source.Context:N0} tokens but the experiment trains at {spec.Data.Context:N0}: prepare the data with this experiment");
                    return ExitCodes.InvalidInput;
                }

                string deviceName = rank?.DeviceFor(parse.GetValue(device)!) ?? parse.GetValue(device)!;
                job = SpecMapping.ToTrainingJob(spec, parse.GetValue(output)!, VocabularySize(spec.Data.Tokenizer, path),
                    source.SequencesPerEpoch, deviceName, parse.GetValue(resume), path);
                if (parse.GetValue(zeroStage) is { } stage) job = job with { Training = (job.Training with { ZeroStage = stage }).Validated() };
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            ICollectives? group = null;
            try
            {
                group = rank?.Connect(job.Training.Device);
            }
            catch (Exception e) when (e is CollectiveFailedException or InvalidOperationException or DllNotFoundException)
            {
                cli.Err.WriteLine($"error: rank {rank!.Rank}: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            using (group)
            using (source)
            using (var cancel = new CancellationTokenSource())
            using (TrainingRunner.CancelOnTermination(cancel))
            {
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"training {spec.Name}: {job.Training.TotalSteps} steps x {job.Training.SequencesPerStep} sequences x {job.Training.Context:N0} tokens on {job.Training.Device}{(group is null ? "" : $" (rank {group.Rank} of {group.WorldSize})")}"));
                TrainingResult result;
                try
                {
                    result = RunWithProgress(cli, job, source, cancel.Token, group);
                }
                catch (CollectiveFailedException e)
                {
                    cli.Err.WriteLine($"error: {e.Message}");
                    return ExitCodes.InvalidInput;
                }
                cli.Out.WriteLine(result.Finished
                    ? $"finished {result.StepsCompleted} steps, last loss {result.LastLoss:0.####}; model: {result.FinalModelDirectory}"
                    : $"stopped after {result.StepsCompleted} steps; checkpoint saved, continue with --resume");
                if (result.PeakParameterElements is { } peak && group is not null)
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"ZeRO stage 3: rank {group.Rank} held at most {peak} parameter elements (its shard and the gathered groups)"));
                return ExitCodes.Ok;
            }
        });
        return command;
    }

    /// <summary>Vocabulary of the experiment's tokenizer without loading LLaMA's model file when its size is known.</summary>
    private static int VocabularySize(string tokenizer, string experimentFile) => tokenizer switch
    {
        "gpt2" => 50257,
        "llama-2" => 32000,
        _ => TokenizerFactory.Create(Path.GetFullPath(tokenizer, Path.GetDirectoryName(Path.GetFullPath(experimentFile))!)).VocabularySize,
    };

    /// <summary>The command line without one option and its value (the launcher's own --gpus).</summary>
    internal static List<string> WithoutOption(IEnumerable<string> args, string option)
    {
        var result = new List<string>();
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] == option) { i++; continue; }
            if (list[i].StartsWith(option + "=", StringComparison.Ordinal)) continue;
            result.Add(list[i]);
        }
        return result;
    }

    private static TrainingResult RunWithProgress(CliContext cli, TrainingJob job, PackedShardSequenceSource source, CancellationToken ct, ICollectives? group)
    {
        string Line(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps} loss {p.Loss:0.0000} lr {p.LearningRate:0.##e+0} grad-norm {p.GradNorm:0.00} {p.TokensPerSecond:N0} tokens/s ETA {p.Eta:hh\\:mm\\:ss}");
        if (!cli.Colour)
        {
            TimeSpan? last = null;
            return TrainingRunner.Run(job, source, group: group, cancellation: ct, progress: new SynchronousProgress<TrainingProgress>(p =>
            {
                if (last is null || p.Step == p.TotalSteps || p.Elapsed - last.Value >= TimeSpan.FromSeconds(5))
                {
                    last = p.Elapsed;
                    cli.Out.WriteLine(Line(p));
                }
            }));
        }

        TrainingResult? result = null;
        cli.Console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: job.Training.TotalSteps);
                result = TrainingRunner.Run(job, source, group: group, cancellation: ct, progress: new SynchronousProgress<TrainingProgress>(p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(Line(p));
                }));
            });
        return result!;
    }
}
