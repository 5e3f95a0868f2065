namespace Workflows.Experiments.Spec;

/// <summary>YAML key of a property when it is not the snake_case of its name.</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class YamlNameAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

/// <summary>Text shown in the JSON Schema (editor tooltips) and in <c>wf schema --markdown</c>.</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Class | AttributeTargets.Field)]
public sealed class DocAttribute(string text) : Attribute
{
    public string Text { get; } = text;
}

/// <summary>How a size literal such as <c>80K</c> is read.</summary>
public enum SizeBase
{
    /// <summary>K = 10^3, M = 10^6, B = G = 10^9, T = 10^12: counts of tokens ("5B tokens", "4M tokens per batch").</summary>
    Decimal,

    /// <summary>K = 2^10, M = 2^20: sequence lengths and context windows ("80K" = 81,920 as in the paper's code).</summary>
    Binary,
}

/// <summary>The property is an integer that may also be written as a size literal (<c>5B</c>, <c>80K</c>).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SizeAttribute(SizeBase sizeBase) : Attribute
{
    public SizeBase Base { get; } = sizeBase;
}

/// <summary>Inclusive numeric bounds that hold for every profile (policy bounds are checked separately).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class BoundsAttribute(double min, double max = double.PositiveInfinity) : Attribute
{
    public double Min { get; } = min;
    public double Max { get; } = max;
}

/// <summary>A regular expression a string value must match (anchored).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class PatternAttribute(string pattern, string hint) : Attribute
{
    public string Pattern { get; } = pattern;
    public string Hint { get; } = hint;
}

/// <summary>Fields that do not change what a run computes (description, ownership): left out of the content hash.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class CosmeticAttribute : Attribute;

/// <summary>
/// A field added after content hashes were published: the canonical form leaves it out while it holds its default, so
/// every experiment written before the field existed (and every archived run) keeps its hash, and writing the default
/// out explicitly changes nothing either. Any other value enters the hash like every other field. The parameters that
/// workflow templates bind leave it out at its default too, so the cache keys of steps that bind a whole section (e.g.
/// <c>${evaluation.needle}</c>) stay put; a template that binds such a field by itself gets "" for its default.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class HashOmitsDefaultAttribute : Attribute;
