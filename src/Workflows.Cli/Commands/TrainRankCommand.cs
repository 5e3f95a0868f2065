using System.CommandLine;
using Workflows.Artifacts;
using Workflows.Artifacts.Store;
using Workflows.Training;
using Workflows.Training.Data;
using Workflows.Training.Distributed;
using Workflows.Training.Loop;

namespace Workflows.Cli.Commands;

/// <summary>
/// <c>wf train-rank JOB.json</c> (hidden): one rank of a GPU agent's data-parallel train job. The agent writes the job
/// (<see cref="RankJobFile"/>) and starts one process per GPU with <see cref="RankLauncher"/>; each joins the group
/// from RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT, rank 0 uploads checkpoints to the artifact store (opened from the
/// agent's environment) and prints a line per step, which the agent turns into the job's progress.
/// </summary>
public static class TrainRankCommand
{
    public static Command Create(CliContext cli)
    {
        var file = new Argument<string>("job") { Description = "The rank job file the GPU agent wrote." };
        var command = new Command(RankJobFile.Command, "One rank of a GPU agent's data-parallel train job (started by wf gpu-agent --gpus N).")
        {
            file,
        };
        command.Hidden = true;
        command.SetAction(async (parse, ct) =>
        {
            RankJobFile rankJob;
            RankEnvironment rank;
            try
            {
                rankJob = RankJobFile.Read(parse.GetValue(file)!);
                rank = RankEnvironment.FromEnvironment() ?? throw new InvalidOperationException("WORLD_SIZE is not set: train-rank runs only as one of a group's ranks");
            }
            catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or System.Text.Json.JsonException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            var job = rankJob.Job with { Training = rankJob.Job.Training with { Device = rank.DeviceFor(rankJob.Job.Training.Device) } };
            try
            {
                ICheckpointStore? store = null;
                if (rank.Rank == 0 && rankJob.CheckpointPrefix is { } prefix)
                {
                    var connection = StorageConnection.FromEnvironment()
                        ?? throw new InvalidOperationException("rank 0 uploads checkpoints but no storage is configured in its environment (the agent's is inherited)");
                    store = new ArtifactCheckpointStore(await BlobArtifactStore.OpenAsync(connection, rankJob.Container!), prefix);
                }

                using var group = rank.Connect(job.Training.Device);
                using var source = new PackedShardSequenceSource(rankJob.DataDirectory);
                using var cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
                using var _ = TrainingRunner.CancelOnTermination(cancel);
                var result = TrainingRunner.Run(job, source, new SynchronousProgress<TrainingProgress>(p => cli.Out.WriteLine(p.StatusLine())),
                    cancel.Token, store, message => cli.Out.WriteLine(message), group);
                if (rank.Rank == 0) rankJob.WriteResult(result);
                cli.Out.WriteLine(result.Finished
                    ? $"finished {result.StepsCompleted} steps (rank {rank.Rank} of {rank.WorldSize})"
                    : $"stopped after {result.StepsCompleted} steps; checkpoint saved");
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is CollectiveFailedException or InvalidOperationException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return command;
    }
}
