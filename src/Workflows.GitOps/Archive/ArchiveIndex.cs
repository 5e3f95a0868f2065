using System.Text.Json;
using System.Text.Json.Serialization;

namespace Workflows.GitOps.Archive;

/// <summary>
/// An experiment that ran from main and is recorded in the archive. <see cref="Path"/> is its file in the repository
/// (e.g. experiments/per-source-5b-80k.yaml); <see cref="ContentHash"/> the canonical hash it ran with.
/// </summary>
public sealed record ArchivedExperiment(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("content_hash")] string ContentHash,
    [property: JsonPropertyName("runs")] IReadOnlyList<string> Runs)
{
    /// <summary>The commit of main that archived it (<c>wf archive --commit</c>).</summary>
    [JsonPropertyName("commit")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Commit { get; init; }
}

/// <summary>
/// The archive as this component needs it: which experiment files are frozen. The artifact store's blob index
/// implements it (wired by the lead); <see cref="JsonArchiveIndex"/> reads the same records from a JSON file.
/// </summary>
public interface IArchiveIndex
{
    Task<IReadOnlyList<ArchivedExperiment>> ListExperimentsAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// An archive index kept as a JSON document <c>{"experiments": [{"name", "path", "content_hash", "runs"}]}</c>: what
/// <c>wf archive --export</c> could write and the PR check reads without storage credentials.
/// </summary>
public sealed class JsonArchiveIndex(IReadOnlyList<ArchivedExperiment> experiments) : IArchiveIndex
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    public IReadOnlyList<ArchivedExperiment> Experiments { get; } = experiments;

    public Task<IReadOnlyList<ArchivedExperiment>> ListExperimentsAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(Experiments);

    public static JsonArchiveIndex Parse(string json)
    {
        var doc = JsonSerializer.Deserialize<Document>(json, Options) ?? throw new FormatException("archive index: empty document");
        return new JsonArchiveIndex(doc.Experiments ?? throw new FormatException("archive index: no \"experiments\" array"));
    }

    public static JsonArchiveIndex Load(string path) => Parse(File.ReadAllText(path));

    public string ToJson() => JsonSerializer.Serialize(new Document(Experiments.ToList()), Options);

    private sealed record Document([property: JsonPropertyName("experiments")] List<ArchivedExperiment>? Experiments);
}
