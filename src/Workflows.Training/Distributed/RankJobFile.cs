using System.Text.Json;
using System.Text.Json.Serialization;

namespace Workflows.Training.Distributed;

/// <summary>
/// A training job handed from a GPU agent to its rank processes (<c>wf train-rank</c>): the <see cref="TrainingJob"/>
/// as JSON, plus where the prepared data is and where checkpoints go in the artifact store. The agent builds the job
/// once from the step's parameters, so every rank trains exactly what the agent would have trained in-process.
/// </summary>
/// <param name="CheckpointPrefix">The artifact store prefix of the job's checkpoints (rank 0 uploads, and fetches
/// the newest before the group resumes); null: local checkpoints only.</param>
/// <param name="Container">The artifact store container (the agent's), opened from the same environment.</param>
public sealed record RankJobFile(TrainingJob Job, string DataDirectory, string? CheckpointPrefix = null, string? Container = null)
{
    /// <summary>The hidden <c>wf</c> command a rank process runs.</summary>
    public const string Command = "train-rank";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public void Write(string path)
    {
        string temp = path + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, Json));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Where rank 0 writes how the run ended, beside the job's output (<see cref="TrainingJob.OutputDirectory"/>).</summary>
    public string ResultPath => Path.Combine(Job.OutputDirectory, "rank-result.json");

    public void WriteResult(TrainingResult result)
    {
        string temp = ResultPath + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(result, Json));
        File.Move(temp, ResultPath, overwrite: true);
    }

    /// <summary>How the ranks' run ended, or null when rank 0 wrote nothing (it failed before the end).</summary>
    public TrainingResult? ReadResult() =>
        File.Exists(ResultPath) ? JsonSerializer.Deserialize<TrainingResult>(File.ReadAllText(ResultPath), Json) : null;

    public static RankJobFile Read(string path) =>
        JsonSerializer.Deserialize<RankJobFile>(File.ReadAllText(path), Json)
        ?? throw new InvalidDataException($"{path} holds no rank job");
}
