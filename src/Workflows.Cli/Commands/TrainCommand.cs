using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Validation;
using Workflows.Training;
using Workflows.Training.Data;
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
        var command = new Command("train", """
            Continual pretraining without the engine: build (or load) the experiment's LLaMA model, stream the packed
            sequences of a data-prep output, and train with AdamW, gradient accumulation, clipping and checkpoints.
            Ctrl-C or SIGTERM writes a checkpoint and stops; --resume continues bit-identically.

            Examples:
              wf prep experiments/smoke.yaml --out out/smoke-data
              wf train experiments/smoke.yaml --data out/smoke-data --out out/smoke-train
              wf train experiments/smoke.yaml --data out/smoke-data --out out/smoke-train --resume
            """)
        {
            file, data, output, resume, device,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return ExitCodes.InvalidInput;
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

                job = SpecMapping.ToTrainingJob(spec, parse.GetValue(output)!, VocabularySize(spec.Data.Tokenizer, path),
                    source.SequencesPerEpoch, parse.GetValue(device)!, parse.GetValue(resume), path);
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            using (source)
            using (var cancel = new CancellationTokenSource())
            using (TrainingRunner.CancelOnTermination(cancel))
            {
                cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"training {spec.Name}: {job.Training.TotalSteps} steps x {job.Training.SequencesPerStep} sequences x {job.Training.Context:N0} tokens on {job.Training.Device}"));
                var result = RunWithProgress(cli, job, source, cancel.Token);
                cli.Out.WriteLine(result.Finished
                    ? $"finished {result.StepsCompleted} steps, last loss {result.LastLoss:0.####}; model: {result.FinalModelDirectory}"
                    : $"stopped after {result.StepsCompleted} steps; checkpoint saved, continue with --resume");
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

    private static TrainingResult RunWithProgress(CliContext cli, TrainingJob job, PackedShardSequenceSource source, CancellationToken ct)
    {
        string Line(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps} loss {p.Loss:0.0000} lr {p.LearningRate:0.##e+0} grad-norm {p.GradNorm:0.00} {p.TokensPerSecond:N0} tokens/s ETA {p.Eta:hh\\:mm\\:ss}");
        if (!cli.Colour)
        {
            TimeSpan? last = null;
            return TrainingRunner.Run(job, source, new SynchronousProgress<TrainingProgress>(p =>
            {
                if (last is null || p.Step == p.TotalSteps || p.Elapsed - last.Value >= TimeSpan.FromSeconds(5))
                {
                    last = p.Elapsed;
                    cli.Out.WriteLine(Line(p));
                }
            }), ct);
        }

        TrainingResult? result = null;
        cli.Console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: job.Training.TotalSteps);
                result = TrainingRunner.Run(job, source, new SynchronousProgress<TrainingProgress>(p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(Line(p));
                }), ct);
            });
        return result!;
    }

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
