using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workflows.Artifacts.ContentAddressing;

/// <summary>
/// One byte-exact text per JSON value, so equal inputs hash equally however they were written: object members sorted
/// by key (ordinal, UTF-16 code units, as in RFC 8785), no insignificant whitespace, numbers normalised
/// (<c>1</c>, <c>1.0</c> and <c>1e0</c> are the same number), strings escaped the same way every time.
/// Duplicate keys are rejected (their meaning is ambiguous).
/// </summary>
public static class CanonicalJson
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = false,
        // Fixed escaping rules: the relaxed encoder keeps non-ASCII text as-is and escapes only what JSON requires
        // plus HTML-sensitive characters — deterministic, which is all a hash needs.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Canonicalize(string json)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        return Canonicalize(document.RootElement);
    }

    public static string Canonicalize(JsonNode? node)
    {
        if (node is null)
        {
            return "null";
        }
        using var document = JsonDocument.Parse(node.ToJsonString());
        return Canonicalize(document.RootElement);
    }

    public static string Canonicalize(JsonElement element)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            Write(writer, element);
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var members = element.EnumerateObject().ToList();
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var m in members)
                {
                    if (!seen.Add(m.Name))
                    {
                        throw new FormatException($"Duplicate JSON key '{m.Name}' cannot be canonicalised.");
                    }
                }
                writer.WriteStartObject();
                foreach (var m in members.OrderBy(m => m.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(m.Name);
                    Write(writer, m.Value);
                }
                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item);
                }
                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(element.GetString());
                break;
            case JsonValueKind.Number:
                writer.WriteRawValue(NormaliseNumber(element.GetRawText()), skipInputValidation: true);
                break;
            case JsonValueKind.True:
                writer.WriteBooleanValue(true);
                break;
            case JsonValueKind.False:
                writer.WriteBooleanValue(false);
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }

    /// <summary>Decimal when it fits (exact: 0.1 stays 0.1), trailing zeros dropped; otherwise the shortest round-trip double.</summary>
    internal static string NormaliseNumber(string raw)
    {
        if (decimal.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
        {
            if (d == 0)
            {
                return "0"; // also folds -0
            }
            // Dividing by 1 with 28 zeros strips the scale's trailing zeros: 1.500m -> 1.5m.
            var stripped = d / 1.0000000000000000000000000000m;
            return stripped.ToString(CultureInfo.InvariantCulture);
        }
        var value = double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
        return value.ToString("R", CultureInfo.InvariantCulture);
    }
}
