using System.Runtime.InteropServices;
using Workflows.Training.Data;
using Workflows.Training.Distributed;
using Workflows.Training.Loop;
using Workflows.Training.Model;
using Workflows.Training.Weights;
using static TorchSharp.torch;

namespace Workflows.Training;

/// <summary>A training run, independent of how it was described (experiment file, engine job, test).</summary>
/// <param name="Model">The architecture (for a base model: its config.json with the experiment's overrides, e.g. the RoPE base).</param>
/// <param name="Training">Loop settings.</param>
/// <param name="OutputDirectory">Receives metrics.jsonl, checkpoints/ and final-model/.</param>
/// <param name="BaseModelDirectory">A HuggingFace folder (config.json + safetensors) to continue pretraining from; null = random init from the seed.</param>
/// <param name="Resume">Continue from the newest complete checkpoint in OutputDirectory/checkpoints, if there is one.</param>
public sealed record TrainingJob(
    LlamaConfig Model,
    TrainingOptions Training,
    string OutputDirectory,
    string? BaseModelDirectory = null,
    bool Resume = false);

/// <summary>How a run ended.</summary>
/// <param name="StepsCompleted">Optimizer steps done in total (including those before a resume).</param>
/// <param name="Finished">True when TotalSteps were reached (false when cancelled).</param>
/// <param name="ResumedFrom">The checkpoint the run continued from, if any.</param>
/// <param name="FinalModelDirectory">The trained weights in HuggingFace layout (only when finished).</param>
/// <param name="LastLoss">Loss of the last step run by this call.</param>
/// <param name="PeakParameterElements">ZeRO stage 3: the most parameter elements this rank held at once (its shard plus the gathered groups); null otherwise.</param>
public sealed record TrainingResult(int StepsCompleted, bool Finished, string? ResumedFrom, string? FinalModelDirectory, double? LastLoss,
    long? PeakParameterElements = null);

/// <summary>
/// The one entry point for training: used by <c>wf train</c> and by the engine's GPU agent. It builds or loads
/// the model, optionally resumes, runs the loop with progress reports, checkpoints on cancellation, and on
/// completion writes <c>final-model/</c> in HuggingFace layout.
/// </summary>
public static class TrainingRunner
{
    public const string FinalModelFolder = "final-model";

    /// <param name="store">
    /// Where checkpoints outlive this machine (the artifact store, for the engine's train jobs): every checkpoint is
    /// uploaded in the background while training goes on, retention (<see cref="TrainingOptions.KeepCheckpoints"/>)
    /// applies to both copies, and a resume takes the newest checkpoint of either place, so a run continues on another
    /// machine with an empty disk. The run returns only when its checkpoints are uploaded.
    /// </param>
    /// <param name="group">The data-parallel group (null: one process). Rank 0 writes metrics, uploads checkpoints and the final model.</param>
    public static TrainingResult Run(TrainingJob job, IPackedSequenceSource data,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default, ICheckpointStore? store = null, Action<string>? log = null,
        ICollectives? group = null)
    {
        group ??= SingleProcess.Instance;
        if (group.Rank != 0) (store, progress) = (null, null);
        manual_seed(job.Training.Seed);
        // Built without storage: the trainer places the weights on the device once (random init there, or the base
        // model's weights read straight into the master weights). The architecture is job.Model, which for a base
        // model is its config.json with the experiment's overrides (the RoPE base of context extension).
        using var model = LlamaModel.CreateEmpty(job.Model);
        using var trainer = new Trainer(model, job.Training, data, job.OutputDirectory, job.BaseModelDirectory, group);

        if (job.Resume && store is not null) FetchNewerCheckpoint(store, trainer.CheckpointsDirectory, log);
        // Rank 0 fetched into the folder the ranks share on this machine: no rank looks for the newest before it is there.
        if (job.Resume) group.Barrier();
        string? resumedFrom = job.Resume ? trainer.ResumeFromNewestCheckpoint() : null;

        CheckpointUploader? uploader = null;
        if (store is not null)
        {
            uploader = new CheckpointUploader(store, trainer.CheckpointsDirectory, job.Training.KeepCheckpoints, log);
            trainer.PruneLocally = false;
            trainer.CheckpointSaved = uploader.Enqueue;
        }
        bool drained = false;
        try
        {
            var steps = trainer.Run(progress, cancellation);
            double? lastLoss = steps.Count > 0 ? steps[^1].Loss : null;
            if (trainer.Step < job.Training.TotalSteps)
            {
                drained = true;
                uploader?.DrainAsync().GetAwaiter().GetResult();
                return new TrainingResult(trainer.Step, false, resumedFrom, null, lastLoss);
            }

            trainer.SaveCheckpoint();
            drained = true;
            uploader?.DrainAsync().GetAwaiter().GetResult();
            var result = Finish(job, trainer, resumedFrom, lastLoss);
            group.Barrier();
            return result;
        }
        catch when (uploader is not null && !drained)
        {
            // Training failed: checkpoints already queued are still worth uploading (the next attempt resumes from them).
            try
            {
                uploader.DrainAsync().GetAwaiter().GetResult();
            }
            catch (IOException)
            {
            }
            throw;
        }
        finally
        {
            uploader?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    static TrainingResult Finish(TrainingJob job, Trainer trainer, string? resumedFrom, double? lastLoss)
    {
        string final = Path.Combine(job.OutputDirectory, FinalModelFolder);
        trainer.SaveModel(final);
        return new TrainingResult(trainer.Step, true, resumedFrom, final, lastLoss, trainer.Gathering?.PeakResidentElements);
    }

    // The store's newest checkpoint, when it is newer than every local one (or there is none locally), is downloaded
    // next to them, so ResumeFromNewestCheckpoint takes it.
    static void FetchNewerCheckpoint(ICheckpointStore store, string checkpointsDirectory, Action<string>? log)
    {
        var remote = store.ListAsync().GetAwaiter().GetResult();
        if (remote.Count == 0) return;
        int newest = remote[^1];
        var local = TrainingCheckpoints.Complete(checkpointsDirectory).Select(c => c.Step).DefaultIfEmpty(-1).Max();
        if (local >= newest) return;
        Directory.CreateDirectory(checkpointsDirectory);
        string target = TrainingCheckpoints.PathFor(checkpointsDirectory, newest);
        if (Directory.Exists(target)) Directory.Delete(target, recursive: true); // an incomplete leftover
        var clock = System.Diagnostics.Stopwatch.StartNew();
        store.DownloadAsync(newest, target).GetAwaiter().GetResult();
        log?.Invoke($"checkpoint {newest} downloaded from the store in {clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>
    /// Cancels <paramref name="source"/> on SIGTERM (and SIGINT) instead of letting the process die, so the loop
    /// stops between steps and writes a checkpoint. Dispose the result to restore the default handling.
    /// </summary>
    public static IDisposable CancelOnTermination(CancellationTokenSource source)
    {
        void Handler(PosixSignalContext context) { context.Cancel = true; source.Cancel(); }
        var registrations = new[]
        {
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handler),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Handler),
        };
        return new Registrations(registrations);
    }

    sealed class Registrations(PosixSignalRegistration[] items) : IDisposable
    {
        public void Dispose() { foreach (var r in items) r.Dispose(); }
    }
}
