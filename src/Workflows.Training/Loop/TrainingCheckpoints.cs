using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp.Modules;
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
/// Resumable checkpoints: <c>checkpoints/checkpoint-&lt;step&gt;/</c> with the weights (<c>model.safetensors</c>
/// + <c>config.json</c>, float32, HF names), the optimizer state (<c>optimizer.bin</c> in TorchSharp's format, or <c>optimizer-flat.bin</c> for FlatAdamW),
/// torch's CPU generator state (<c>rng.bin</c>), <c>trainer-state.json</c> (step, data position, tokens) and a
/// <c>COMPLETE</c> marker.
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
    const string StateFile = "trainer-state.json";
    const string RngFile = "rng.bin";

    public static string PathFor(string checkpointsDirectory, int step) =>
        Path.Combine(checkpointsDirectory, $"checkpoint-{step}");

    public static string Save(string checkpointsDirectory, TrainerState state, LlamaModel model, IWeightOptimizer optimizer)
    {
        string final = PathFor(checkpointsDirectory, state.Step);
        if (IsComplete(final)) return final;

        string temp = Path.Combine(checkpointsDirectory, $".checkpoint-{state.Step}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        HuggingFaceCheckpoint.Save(model, temp, maxShardBytes: long.MaxValue);
        optimizer.SaveState(Path.Combine(temp, optimizer.StateFileName));
        using (var rng = get_rng_state()) File.WriteAllBytes(Path.Combine(temp, RngFile), rng.bytes.ToArray());
        File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state));
        using (var marker = new FileStream(Path.Combine(temp, CompleteMarker), FileMode.CreateNew))
        {
            marker.Write(System.Text.Encoding.UTF8.GetBytes($"step {state.Step}\n"));
            marker.Flush(flushToDisk: true);
        }

        if (Directory.Exists(final)) Directory.Delete(final, recursive: true); // an incomplete leftover
        Directory.Move(temp, final);
        return final;
    }

    public static bool IsComplete(string checkpointDirectory) =>
        File.Exists(Path.Combine(checkpointDirectory, CompleteMarker));

    /// <summary>The complete checkpoint with the highest step, or null when there is none.</summary>
    public static string? FindNewestComplete(string checkpointsDirectory)
    {
        if (!Directory.Exists(checkpointsDirectory)) return null;
        return Directory.EnumerateDirectories(checkpointsDirectory)
            .Select(dir => (dir, match: CheckpointName().Match(Path.GetFileName(dir))))
            .Where(x => x.match.Success && IsComplete(x.dir))
            .OrderByDescending(x => int.Parse(x.match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .Select(x => x.dir)
            .FirstOrDefault();
    }

    /// <summary>Loads weights, optimizer and RNG state into existing objects and returns the trainer state.</summary>
    public static TrainerState Restore(string checkpointDirectory, LlamaModel model, IWeightOptimizer optimizer)
    {
        if (!IsComplete(checkpointDirectory))
            throw new InvalidOperationException($"{checkpointDirectory} has no {CompleteMarker} marker: it was not fully written");
        HuggingFaceCheckpoint.Load(model, checkpointDirectory);
        optimizer.LoadState(Path.Combine(checkpointDirectory, optimizer.StateFileName));
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
