using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Workflows.Experiments.Spec;

/// <summary>
/// The identity of an experiment for caching and exact reruns. Canonical JSON: keys sorted by ordinal, every default
/// written out (a changed default changes the computation, so it must change the hash), optional fields that are not
/// set (null) left out (so adding a new optional field to the spec leaves every existing hash, and every archived run's
/// hash, unchanged), likewise fields marked <see cref="HashOmitsDefaultAttribute"/> while they hold their default, sizes
/// as plain integers, numbers in their shortest round-trip form, enums by their YAML names, the mix resolved to
/// weights, and cosmetic fields (description, gitops) and the name left out, so that reformatting a file or renaming it
/// changes nothing while any setting that changes the computation changes the hash.
/// </summary>
public static class CanonicalForm
{
    /// <summary>Bumped when the canonical form itself changes (so old hashes are never confused with new ones).</summary>
    public const int Version = 2;

    private static readonly HashSet<string> ExcludedTopLevel = ["name"];

    public static string ToJson(ExperimentSpec spec) => Write(spec, includeAll: false);

    /// <summary>Every field, cosmetic ones and the name included: the values workflow templates bind with ${path}.</summary>
    public static string ToParameterJson(ExperimentSpec spec) => Write(spec, includeAll: true);

    private static string Write(ExperimentSpec spec, bool includeAll)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false }))
        {
            writer.WriteStartObject();
            if (!includeAll)
            {
                writer.WriteNumber("canonical_version", Version);
            }

            WriteFields(writer, spec, topLevel: !includeAll, includeCosmetic: includeAll);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>
    /// Any spec record (a step's parameters, a section of the spec) in canonical form: keys sorted, defaults written,
    /// unset optional fields left out. Step cache keys are built from it.
    /// </summary>
    public static string ToJson(object record)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false }))
        {
            writer.WriteStartObject();
            WriteFields(writer, record, topLevel: false, includeCosmetic: false);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>SHA-256 of <see cref="ToJson(ExperimentSpec)"/>, lower-case hex.</summary>
    public static string Hash(ExperimentSpec spec) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ToJson(spec))));

    private static void WriteFields(Utf8JsonWriter writer, object record, bool topLevel, bool includeCosmetic)
    {
        var model = SpecModel.Record(record.GetType());
        foreach (var field in model.FieldsByKey)
        {
            if ((field.Cosmetic && !includeCosmetic) || (topLevel && ExcludedTopLevel.Contains(field.Key)))
            {
                continue;
            }

            var value = field.Property.GetValue(record);
            if ((value is null && !includeCosmetic) || (field.HashOmitsDefault && field.IsDefault(value)))
            {
                continue;
            }

            writer.WritePropertyName(field.Key);
            WriteValue(writer, value, includeCosmetic);
        }
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value, bool includeCosmetic)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case int i:
                writer.WriteNumberValue(i);
                break;
            case long l:
                writer.WriteNumberValue(l);
                break;
            case double d:
                writer.WriteRawValue(FormatDouble(d));
                break;
            case Enum e:
                writer.WriteStringValue(SpecModel.EnumName(e.GetType(), e));
                break;
            case MixSpec mix:
                writer.WriteStartObject();
                foreach (var (source, weight) in mix.Resolve().OrderBy(p => p.Key.ToString(), StringComparer.Ordinal))
                {
                    writer.WritePropertyName(source.ToString());
                    writer.WriteRawValue(FormatDouble(weight));
                }

                writer.WriteEndObject();
                break;
            case LengthBucket bucket:
                writer.WriteStringValue(string.Create(CultureInfo.InvariantCulture, $"{bucket.From}-{bucket.To}"));
                break;
            case System.Collections.IEnumerable list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    WriteValue(writer, item, includeCosmetic);
                }

                writer.WriteEndArray();
                break;
            default:
                writer.WriteStartObject();
                WriteFields(writer, value, topLevel: false, includeCosmetic);
                writer.WriteEndObject();
                break;
        }
    }

    /// <summary>Shortest round-trip form, always with a decimal point or exponent so 1 and 1.0 agree ("1.0").</summary>
    private static string FormatDouble(double d)
    {
        var s = d.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E', StringComparison.Ordinal))
        {
            // JSON wants e.g. 2E-05 as 2E-05 (valid) — normalise the exponent's leading zeros for stability.
            var parts = s.Split('E');
            var exponent = int.Parse(parts[1], CultureInfo.InvariantCulture);
            var mantissa = parts[0].Contains('.', StringComparison.Ordinal) ? parts[0] : parts[0] + ".0";
            return $"{mantissa}e{exponent.ToString(CultureInfo.InvariantCulture)}";
        }

        return s.Contains('.', StringComparison.Ordinal) ? s : s + ".0";
    }
}
