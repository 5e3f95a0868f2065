using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Yaml;

/// <summary>
/// A located YAML tree: every node remembers where it started so that validation errors can point at
/// file:line:column. Built by <see cref="YamlTreeReader"/>; anchors/aliases are refused there, so the tree is
/// always a finite tree (no shared nodes, no alias expansion).
/// </summary>
public abstract record YNode(SourceLocation Location);

/// <param name="Plain">True for an unquoted scalar (so <c>80K</c> and <c>true</c> are candidates for typed values,
/// while <c>"80K"</c> is a string).</param>
public sealed record YScalar(SourceLocation Location, string Value, bool Plain) : YNode(Location)
{
    public bool IsNull => Plain && (Value.Length == 0 || Value is "~" or "null" or "Null" or "NULL");
}

public sealed record YEntry(YScalar Key, YNode Value);

public sealed record YMapping(SourceLocation Location, IReadOnlyList<YEntry> Entries) : YNode(Location)
{
    public YNode? this[string key] => Entries.FirstOrDefault(e => e.Key.Value == key)?.Value;
}

public sealed record YSequence(SourceLocation Location, IReadOnlyList<YNode> Items) : YNode(Location);
