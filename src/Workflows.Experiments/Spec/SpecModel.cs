using System.Collections.Concurrent;
using System.Reflection;
using System.Text;

namespace Workflows.Experiments.Spec;

/// <summary>
/// The spec's types described once, by reflection over the records: YAML key, type, default, documentation and
/// bounds of every field. The binder, the canonical form and the JSON Schema generator all read this one model,
/// so they cannot disagree.
/// </summary>
public static class SpecModel
{
    private static readonly ConcurrentDictionary<Type, RecordModel> Records = new();

    public static RecordModel Record(Type type) => Records.GetOrAdd(type, Build);

    public static bool IsRecord(Type type) =>
        type.IsClass && type != typeof(string) && !type.IsAbstract && !type.IsGenericType
        && type != typeof(MixSpec) && type != typeof(LengthBucket)
        && (type.Namespace == typeof(ExperimentSpec).Namespace || type.Namespace == typeof(Templates.WorkflowTemplate).Namespace
            || typeof(Templates.IStepParameters).IsAssignableFrom(type));

    public static string SnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c) && i > 0 && (char.IsLower(name[i - 1]) || (i + 1 < name.Length && char.IsLower(name[i + 1]))))
            {
                sb.Append('_');
            }

            sb.Append(char.ToLowerInvariant(c));
        }

        return sb.ToString();
    }

    /// <summary>YAML name of an enum value: kebab-case (PerSource → per-source) unless [YamlName] says otherwise.</summary>
    public static string EnumName(Type enumType, object value) =>
        EnumNames.GetOrAdd((enumType, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)), _ => ComputeEnumName(enumType, value));

    private static readonly ConcurrentDictionary<(Type, long), string> EnumNames = new();
    private static readonly ConcurrentDictionary<Type, IReadOnlyList<(string Name, object Value)>> EnumValueLists = new();

    private static string ComputeEnumName(Type enumType, object value)
    {
        var name = Enum.GetName(enumType, value)!;
        if (enumType == typeof(SlimPajamaSource))
        {
            return name;
        }

        var field = enumType.GetField(name)!;
        return field.GetCustomAttribute<YamlNameAttribute>()?.Name ?? SnakeCase(name).Replace('_', '-');
    }

    public static IReadOnlyList<(string Name, object Value)> EnumValues(Type enumType) =>
        EnumValueLists.GetOrAdd(enumType, t => Enum.GetValues(t).Cast<object>().Select(v => (EnumName(t, v), v)).ToList());

    private static RecordModel Build(Type type)
    {
        // NullabilityInfoContext is not thread-safe (its caches are plain dictionaries): one per record model built,
        // since records are modelled on first use from whichever thread binds or hashes first.
        var nullability = new NullabilityInfoContext();
        var ctor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var fields = new List<FieldModel>();
        foreach (var parameter in ctor.GetParameters())
        {
            var property = type.GetProperty(parameter.Name!, BindingFlags.Public | BindingFlags.Instance)
                ?? throw new InvalidOperationException($"{type.Name}.{parameter.Name} has no property");
            var attributes = property.GetCustomAttributes(true).Concat(parameter.GetCustomAttributes(true)).ToList();
            var key = attributes.OfType<YamlNameAttribute>().FirstOrDefault()?.Name ?? SnakeCase(parameter.Name!);
            var declared = parameter.ParameterType;
            var underlying = Nullable.GetUnderlyingType(declared);
            var nullable = underlying is not null
                || (!declared.IsValueType && parameter.HasDefaultValue && parameter.DefaultValue is null
                    && nullability.Create(property).ReadState == NullabilityState.Nullable);
            fields.Add(new FieldModel(
                key,
                parameter,
                property,
                underlying ?? declared,
                Required: !parameter.HasDefaultValue,
                Nullable: nullable,
                Doc: attributes.OfType<DocAttribute>().FirstOrDefault()?.Text,
                Size: attributes.OfType<SizeAttribute>().FirstOrDefault()?.Base,
                Bounds: attributes.OfType<BoundsAttribute>().FirstOrDefault(),
                Pattern: attributes.OfType<PatternAttribute>().FirstOrDefault(),
                Cosmetic: attributes.OfType<CosmeticAttribute>().Any(),
                HashOmitsDefault: attributes.OfType<HashOmitsDefaultAttribute>().Any()));
        }

        return new RecordModel(type, ctor, fields, type.GetCustomAttribute<DocAttribute>()?.Text);
    }
}

public sealed record RecordModel(Type Type, ConstructorInfo Constructor, IReadOnlyList<FieldModel> Fields, string? Doc)
{
    /// <summary>Fields in ordinal order of their keys (the canonical form's order), computed once.</summary>
    public IReadOnlyList<FieldModel> FieldsByKey { get; } = [.. Fields.OrderBy(f => f.Key, StringComparer.Ordinal)];

    public FieldModel? Field(string key) => Fields.FirstOrDefault(f => f.Key == key);
}

/// <param name="Type">The field's type with Nullable&lt;T&gt; unwrapped.</param>
/// <param name="Nullable">The field may be absent and stays null (no default object is made for it).</param>
public sealed record FieldModel(
    string Key,
    ParameterInfo Parameter,
    PropertyInfo Property,
    Type Type,
    bool Required,
    bool Nullable,
    string? Doc,
    SizeBase? Size,
    BoundsAttribute? Bounds,
    PatternAttribute? Pattern,
    bool Cosmetic,
    bool HashOmitsDefault = false)
{
    /// <summary>True when <paramref name="value"/> is this field's declared default (for <see cref="HashOmitsDefaultAttribute"/>).</summary>
    public bool IsDefault(object? value) => Parameter.HasDefaultValue && Equals(
        Parameter.DefaultValue is { } d && Type.IsEnum ? Enum.ToObject(Type, d) : Parameter.DefaultValue, value);

    public Type? ElementType => Type.IsGenericType && Type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>)
        ? Type.GetGenericArguments()[0]
        : null;
}
