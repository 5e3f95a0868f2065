using System.Text.Json;
using System.Text.Json.Serialization;

namespace Workflows.Evaluation.DomainLoss;

/// <summary>
/// The one file format of a domain-loss report (<c>loss.json</c>): written by <c>wf eval loss</c> and the engine's
/// evaluate-domain-loss step, read by <c>wf eval report</c> and the report step. snake_case, sources by name.
/// </summary>
public static class DomainLossJson
{
    public const string FileName = "loss.json";

    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter() },
    };

    public static void Write(string path, DomainLossReport report)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(report, Options));
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Reads a report; a file that is not one fails with its path in the message.</summary>
    public static DomainLossReport Read(string path) => Parse(File.ReadAllText(path), path);

    /// <summary>A report from its JSON text; <paramref name="source"/> names it in the error when it is not one.</summary>
    public static DomainLossReport Parse(string json, string source)
    {
        try
        {
            var report = JsonSerializer.Deserialize<DomainLossReport>(json, Options);
            if (report?.Buckets is null || report.Lengths is null)
            {
                throw new InvalidDataException($"{source}: not a domain-loss report (expected \"experiment\", \"buckets\" and \"lengths\")");
            }

            return report;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not a domain-loss report: {e.Message}", e);
        }
    }
}
