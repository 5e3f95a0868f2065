using System.Text.Json;
using System.Text.RegularExpressions;
using Workflows.Training.Distributed;
using Workflows.Training.Model;
using Workflows.Training.Weights;
using static TorchSharp.torch;

namespace Workflows.Training.Loop;

/// <summary>What, besides tensors, a resumed run needs to continue exactly where the saved one stopped.</summary>
/// <param name="Step">Optimizer steps completed.</param>
/// <param name="DataPosition">The data source's <c>Position</c> after those steps.</param>
/// <param name="TokensSeen">Training tokens consumed so far.</param>
public sealed record TrainerState(int Step, long DataPosition, long TokensSeen);

/// <summary>
/// Resumable checkpoints: <c>checkpoints/checkpoint-&lt;step&gt;/</c> with the fp32 master weights in HuggingFace
/// layout (<c>model*.safetensors</c> in shards of at most 5 GB + <c>config.json</c>; such a folder also loads as a
/// model), the AdamW moments and step count (<c>optimizer.bin</c>, see <see cref="MasterAdamW.SaveMoments"/>),
/// torch's CPU generator state (<c>rng.bin</c>), <c>trainer-state.json</c> (step, data position, tokens), the run's
/// <c>metrics.jsonl</c> so far, and a <c>COMPLETE</c> marker.
/// <para>
/// A checkpoint is written into a hidden temporary folder next to its final place, the marker is written last,
/// and only then is the folder renamed (atomic within a file system). So a process killed while saving leaves a
/// temporary folder that is never read, and a folder without the marker is never taken by
/// <see cref="FindNewestComplete"/>.
/// </para>
/// </summary>
public static partial class TrainingCheckpoints
{
    public const string CompleteMarker = "COMPLETE";
    public const string OptimizerFile = "optimizer.bin";
    const string StateFile = "trainer-state.json";
    const string RngFile = "rng.bin";

    public static string PathFor(string checkpointsDirectory, int step) =>
        Path.Combine(checkpointsDirectory, $"checkpoint-{step}");

    /// <summary>The copy of metrics.jsonl (lines up to the checkpoint's step) a checkpoint carries, so a run resumed on an empty disk keeps its history.</summary>
    public const string MetricsFile = "metrics.jsonl";

    public static string Save(string checkpointsDirectory, TrainerState state, LlamaModel model, FlatParameters flat, MasterAdamW optimizer,
        string? metricsPath = null, ICollectives? group = null)
    {
        group ??= SingleProcess.Instance;
        string final = PathFor(checkpointsDirectory, state.Step);
        if (IsComplete(final)) return final;

        // One process: a fresh hidden folder. Several ranks share the folder of this step (same name on every rank).
        string temp = group.WorldSize == 1
            ? Path.Combine(checkpointsDirectory, $".checkpoint-{state.Step}.tmp-{Guid.NewGuid():N}")
            : Path.Combine(checkpointsDirectory, $".checkpoint-{state.Step}.tmp-ranks");
        if (group.Rank == 0)
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); // a leftover of an interrupted save
            Directory.CreateDirectory(temp);
        }
        group.Barrier();
        if (group.WorldSize == 1)
        {
            HuggingFaceCheckpoint.Save(model.Config, MasterWeights(flat, optimizer), temp);
            using var file = File.Create(Path.Combine(temp, OptimizerFile));
            optimizer.SaveMoments(file);
        }
        else
        {
            OptimizerShards.Write(Path.Combine(temp, OptimizerShards.FileName(group.Rank, group.WorldSize)), optimizer);
        }
        group.Barrier();
        if (group.Rank == 0)
        {
            if (group.WorldSize > 1) File.WriteAllText(Path.Combine(temp, "config.json"), model.Config.ToHuggingFaceJson());
            using (var rng = get_rng_state()) File.WriteAllBytes(Path.Combine(temp, RngFile), rng.bytes.ToArray());
            File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state));
            if (metricsPath is not null && File.Exists(metricsPath)) File.Copy(metricsPath, Path.Combine(temp, MetricsFile));
            using (var marker = new FileStream(Path.Combine(temp, CompleteMarker), FileMode.CreateNew))
            {
                marker.Write(System.Text.Encoding.UTF8.GetBytes($"step {state.Step}\n"));
                marker.Flush(flushToDisk: true);
            }

            if (Directory.Exists(final)) Directory.Delete(final, recursive: true); // an incomplete leftover
            Directory.Move(temp, final);
        }
        group.Barrier();
        return final;
    }

    /// <summary>The optimizer's fp32 master weights under their HF names, read one tensor at a time.</summary>
    public static IReadOnlyList<HuggingFaceCheckpoint.WeightSource> MasterWeights(FlatParameters flat, MasterAdamW optimizer) =>
        flat.Parameters.Select(e => new HuggingFaceCheckpoint.WeightSource(e.Name, e.Slot.Shape,
            () =>
            {
                using var values = optimizer.ReadMaster(e.Slot.Offset - optimizer.Start, e.Slot.Count);
                return values.view(e.Slot.Shape);
            })).ToList();

    public static bool IsComplete(string checkpointDirectory) =>
        File.Exists(Path.Combine(checkpointDirectory, CompleteMarker));

    /// <summary>The complete checkpoint with the highest step, or null when there is none.</summary>
    public static string? FindNewestComplete(string checkpointsDirectory) => Complete(checkpointsDirectory).Select(c => c.Directory).FirstOrDefault();

    /// <summary>Complete checkpoints, newest first.</summary>
    public static IEnumerable<(int Step, string Directory)> Complete(string checkpointsDirectory)
    {
        if (!Directory.Exists(checkpointsDirectory)) return [];
        return Directory.EnumerateDirectories(checkpointsDirectory)
            .Select(dir => (dir, match: CheckpointName().Match(Path.GetFileName(dir))))
            .Where(x => x.match.Success && IsComplete(x.dir))
            .Select(x => (int.Parse(x.match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), x.dir))
            .OrderByDescending(x => x.Item1)
            .ToList();
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> complete checkpoints (and leftovers of interrupted saves).</summary>
    public static IReadOnlyList<int> Prune(string checkpointsDirectory, int keep)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(keep, 1);
        var removed = new List<int>();
        foreach (var (step, dir) in Complete(checkpointsDirectory).Skip(keep))
        {
            Directory.Delete(dir, recursive: true);
            removed.Add(step);
        }
        return removed;
    }

    /// <summary>
    /// Loads this rank's master weights and optimizer state (from a checkpoint written by one process or by any number
    /// of ranks: each rank takes the elements of its own range) and the RNG state, and returns the trainer state. The
    /// caller writes the parameters from the master weights.
    /// </summary>
    public static TrainerState Restore(string checkpointDirectory, FlatParameters flat, MasterAdamW optimizer)
    {
        if (!IsComplete(checkpointDirectory))
            throw new InvalidOperationException($"{checkpointDirectory} has no {CompleteMarker} marker: it was not fully written");
        if (OptimizerShards.Find(checkpointDirectory) is { Count: > 0 } shards)
        {
            OptimizerShards.Read(shards, optimizer);
        }
        else
        {
            var slots = flat.Parameters.ToDictionary(e => e.Name, e => e.Slot);
            HuggingFaceCheckpoint.Read(checkpointDirectory, slots.ToDictionary(e => e.Key, e => e.Value.Shape), (name, loaded) =>
            {
                var slot = slots[name];
                long from = Math.Max(slot.Offset, optimizer.Start), to = Math.Min(slot.Offset + slot.Count, optimizer.Start + optimizer.Count);
                if (from >= to) return;
                using var values = loaded.reshape(-1);
                using var part = values.narrow(0, from - slot.Offset, to - from);
                optimizer.SetMaster(from - optimizer.Start, part);
            });
            using var file = File.OpenRead(Path.Combine(checkpointDirectory, OptimizerFile));
            OptimizerShards.ReadSingle(file, flat.Count, optimizer);
        }
        using (var rng = get_rng_state())
        {
            byte[] saved = File.ReadAllBytes(Path.Combine(checkpointDirectory, RngFile));
            saved.CopyTo(rng.bytes);
            set_rng_state(rng);
        }
        return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(checkpointDirectory, StateFile)))
            ?? throw new InvalidDataException($"{checkpointDirectory}/{StateFile} is empty");
    }

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();
}
