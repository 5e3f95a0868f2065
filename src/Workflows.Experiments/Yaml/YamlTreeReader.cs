using System.Text;
using Workflows.Experiments.Paths;
using Workflows.Experiments.Validation;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Workflows.Experiments.Yaml;

/// <summary>
/// Reads one YAML document into a <see cref="YNode"/> tree with locations, defensively: experiment files come from
/// pull requests, so size, depth and node count are bounded, binary input is refused before parsing, and anchors and
/// aliases (the vehicle of "billion laughs" bombs) are not accepted at all: an experiment file never needs them.
/// Duplicate keys are reported (all of them) rather than silently overwritten.
/// </summary>
public static class YamlTreeReader
{
    public const long MaxFileBytes = 1 << 20;
    public const int MaxDepth = 32;
    public const int MaxNodes = 10_000;
    public const int MaxScalarChars = 64 * 1024;

    /// <summary>The YAML core schema's tags; anything else (e.g. !!python/object) is refused, never interpreted.</summary>
    private static readonly HashSet<string> CoreTags =
    [
        "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq",
    ];

    public sealed record Result(YNode? Root, IReadOnlyList<Diagnostic> Diagnostics);

    public static Result ReadFile(string path)
    {
        // Before anything is opened: a link would make wf print another file, and a FIFO would block the read forever.
        if (PathPolicy.CheckSourceFile(path) is { } unsafePath)
        {
            return Fail(new SourceLocation(path, 1, 1), DiagnosticCode.UnsafePath, unsafePath,
                "commit the experiment as a regular file inside the repository");
        }

        var info = new FileInfo(path);
        if (!info.Exists)
        {
            return Fail(new SourceLocation(path, 0, 0), DiagnosticCode.InvalidValue, "file not found", "check the path");
        }

        if (info.Length > MaxFileBytes)
        {
            return Fail(new SourceLocation(path, 0, 0), DiagnosticCode.HostileInput,
                $"file is {info.Length:N0} bytes; experiment files are limited to {MaxFileBytes:N0} bytes",
                "an experiment file holds settings, not data: reference data by path instead");
        }

        return ReadBytes(path, File.ReadAllBytes(path));
    }

    public static Result ReadBytes(string fileName, ReadOnlySpan<byte> bytes)
    {
        var start = new SourceLocation(fileName, 1, 1);
        if (bytes.Length > MaxFileBytes)
        {
            return Fail(start, DiagnosticCode.HostileInput,
                $"input is {bytes.Length:N0} bytes; experiment files are limited to {MaxFileBytes:N0} bytes", null);
        }

        var nul = bytes.IndexOf((byte)0);
        if (nul >= 0)
        {
            return Fail(LocationOfByte(fileName, bytes, nul), DiagnosticCode.HostileInput,
                "file contains a NUL byte: it is binary, not YAML text", "save the experiment as UTF-8 text");
        }

        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            var at = e.Index >= 0 ? e.Index : 0;
            return Fail(LocationOfByte(fileName, bytes, at), DiagnosticCode.HostileInput,
                "file is not valid UTF-8", "save the experiment as UTF-8 text");
        }

        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text[1..];
        }

        return ReadText(fileName, text);
    }

    public static Result ReadText(string fileName, string text)
    {
        var builder = new TreeBuilder(fileName);
        try
        {
            var parser = new Parser(new StringReader(text));
            var root = builder.Build(parser);
            return new Result(root, builder.Diagnostics);
        }
        catch (TreeLimitException limit)
        {
            return new Result(null, [.. builder.Diagnostics, limit.Diagnostic]);
        }
        catch (YamlException e)
        {
            var location = new SourceLocation(fileName, (int)e.Start.Line, (int)e.Start.Column);
            var message = e.Message;
            var colon = message.IndexOf("): ", StringComparison.Ordinal);
            if (message.StartsWith('(') && colon > 0)
            {
                message = message[(colon + 3)..];
            }

            return new Result(null, [.. builder.Diagnostics, Syntax(builder, location, Untrusted.Escape(message, 300))]);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or IndexOutOfRangeException
                                      or NullReferenceException or OverflowException or KeyNotFoundException)
        {
            // YamlDotNet's scanner and parser throw these for some malformed input instead of a YamlException, e.g. an
            // unclosed flow mapping followed by a plain scalar on the next line (InvalidOperationException "Operation is not
            // valid due to the current state of the object"). They carry no position: report where the parser got to,
            // and the flow collection that is still open, which is nearly always the cause (tests/…/YamlReaderFuzzTests).
            return new Result(null, [.. builder.Diagnostics,
                Syntax(builder, builder.LastPosition, null)]);
        }
    }

    /// <param name="message">The parser's own message, or null when it threw without one worth showing.</param>
    private static Diagnostic Syntax(TreeBuilder builder, SourceLocation at, string? message)
    {
        if (builder.OpenFlow is { } open)
        {
            var what = open.Mapping ? "flow mapping '{'" : "flow sequence '['";
            var close = open.Mapping ? '}' : ']';
            return new Diagnostic(open.Location, DiagnosticCode.YamlSyntax, open.Path,
                $"YAML syntax error: the {what} opened here is not closed (the parser stopped at line {at.Line}, column {at.Column}{(message is null ? "" : ": " + message)})",
                $"close it with '{close}' on the same logical line, or write the {(open.Mapping ? "mapping" : "list")} as indented lines");
        }

        return new Diagnostic(at, DiagnosticCode.YamlSyntax, "", $"YAML syntax error: {message ?? "the parser could not continue after this point"}",
            "check indentation and quoting near this position");
    }

    private static Result Fail(SourceLocation location, DiagnosticCode code, string message, string? hint) =>
        new(null, [new Diagnostic(location, code, "", message, hint)]);

    private static SourceLocation LocationOfByte(string file, ReadOnlySpan<byte> bytes, int index)
    {
        var before = bytes[..Math.Min(index, bytes.Length)];
        var line = before.Count((byte)'\n') + 1;
        var lastNewline = before.LastIndexOf((byte)'\n');
        return new SourceLocation(file, line, index - lastNewline);
    }

    private sealed class TreeLimitException(Diagnostic diagnostic) : Exception(diagnostic.Message)
    {
        public Diagnostic Diagnostic { get; } = diagnostic;
    }

    private sealed record OpenCollection(SourceLocation Location, bool Mapping, string Path);

    private sealed class TreeBuilder(string file)
    {
        private readonly Stack<OpenCollection> openFlow = new();
        private int nodes;

        public List<Diagnostic> Diagnostics { get; } = [];

        /// <summary>The innermost flow collection ('{' or '[') whose end has not been read.</summary>
        public OpenCollection? OpenFlow => openFlow.Count > 0 ? openFlow.Peek() : null;

        /// <summary>The end of the last event read: where a parser failure without a position happened (or just after).</summary>
        public SourceLocation LastPosition { get; private set; } = new(file, 1, 1);

        private void Advance(IParser parser)
        {
            if (parser.Current is { } current)
            {
                LastPosition = Loc(current.End);
            }

            parser.MoveNext();
            if (parser.Current is { } next)
            {
                LastPosition = Loc(next.Start);
            }
        }

        /// <summary>Consumes the end event of a collection when it is next (tracking the position, unlike TryConsume).</summary>
        private bool TryEnd<T>(IParser parser)
            where T : ParsingEvent
        {
            if (parser.Current is not T)
            {
                return false;
            }

            Advance(parser);
            return true;
        }

        public YNode? Build(IParser parser)
        {
            parser.Consume<StreamStart>();
            if (parser.TryConsume<StreamEnd>(out _))
            {
                return null;
            }

            parser.Consume<DocumentStart>();
            var root = ReadNode(parser, depth: 0, path: "");
            parser.Consume<DocumentEnd>();
            if (parser.Accept<DocumentStart>(out var second))
            {
                Diagnostics.Add(new Diagnostic(Loc(second.Start), DiagnosticCode.InvalidValue, "",
                    "more than one YAML document in the file", "put each experiment in its own file"));
            }

            return root;
        }

        private SourceLocation Loc(Mark mark) => new(file, (int)mark.Line, (int)mark.Column);

        private YNode ReadNode(IParser parser, int depth, string path)
        {
            if (++nodes > MaxNodes)
            {
                throw new TreeLimitException(new Diagnostic(Loc(parser.Current!.Start), DiagnosticCode.HostileInput, path,
                    $"more than {MaxNodes:N0} YAML nodes", "experiment files are small: remove generated content"));
            }

            if (depth > MaxDepth)
            {
                throw new TreeLimitException(new Diagnostic(Loc(parser.Current!.Start), DiagnosticCode.HostileInput, path,
                    $"nesting deeper than {MaxDepth} levels", "experiment files are at most a few levels deep"));
            }

            var current = parser.Current!;
            if (current is AnchorAlias alias)
            {
                throw new TreeLimitException(new Diagnostic(Loc(alias.Start), DiagnosticCode.HostileInput, path,
                    $"YAML alias {Untrusted.Quote("*" + alias.Value)} is not allowed in experiment files",
                    "write the value out; anchors and aliases are refused so that no file can expand into a huge document"));
            }

            if (current is NodeEvent node)
            {
                if (!node.Anchor.IsEmpty)
                {
                    throw new TreeLimitException(new Diagnostic(Loc(node.Start), DiagnosticCode.HostileInput, path,
                        $"YAML anchor {Untrusted.Quote("&" + node.Anchor.Value)} is not allowed in experiment files",
                        "write the value out; anchors and aliases are refused so that no file can expand into a huge document"));
                }

                if (!node.Tag.IsEmpty && !node.Tag.IsNonSpecific && !CoreTags.Contains(node.Tag.Value))
                {
                    Diagnostics.Add(new Diagnostic(Loc(node.Start), DiagnosticCode.InvalidValue, path,
                        $"YAML tag {Untrusted.Quote(node.Tag.Value)} is not supported", "remove the tag"));
                }
            }

            switch (current)
            {
                case Scalar scalar:
                    Advance(parser);
                    if (scalar.Value.Length > MaxScalarChars)
                    {
                        throw new TreeLimitException(new Diagnostic(Loc(scalar.Start), DiagnosticCode.HostileInput, path,
                            $"a value of {scalar.Value.Length:N0} characters (limit {MaxScalarChars:N0})", null));
                    }

                    return new YScalar(Loc(scalar.Start), scalar.Value, scalar.Style == ScalarStyle.Plain);

                case SequenceStart sequenceStart:
                {
                    var flow = sequenceStart.Style == SequenceStyle.Flow;
                    if (flow)
                    {
                        openFlow.Push(new OpenCollection(Loc(sequenceStart.Start), Mapping: false, path));
                    }

                    Advance(parser);
                    var items = new List<YNode>();
                    while (!TryEnd<SequenceEnd>(parser))
                    {
                        items.Add(ReadNode(parser, depth + 1, $"{path}[{items.Count}]"));
                    }

                    if (flow)
                    {
                        openFlow.Pop();
                    }

                    return new YSequence(Loc(sequenceStart.Start), items);
                }

                case MappingStart mappingStart:
                {
                    var flow = mappingStart.Style == MappingStyle.Flow;
                    if (flow)
                    {
                        openFlow.Push(new OpenCollection(Loc(mappingStart.Start), Mapping: true, path));
                    }

                    Advance(parser);
                    var entries = new List<YEntry>();
                    var seen = new Dictionary<string, YScalar>(StringComparer.Ordinal);
                    while (!TryEnd<MappingEnd>(parser))
                    {
                        var keyNode = ReadNode(parser, depth + 1, path);
                        if (keyNode is not YScalar key)
                        {
                            Diagnostics.Add(new Diagnostic(keyNode.Location, DiagnosticCode.WrongType, path,
                                "a mapping key must be a plain name", "use a simple key such as 'name:'"));
                            ReadNode(parser, depth + 1, path);
                            continue;
                        }

                        var childPath = path.Length == 0 ? key.Value : $"{path}.{key.Value}";
                        var value = ReadNode(parser, depth + 1, childPath);
                        if (seen.TryGetValue(key.Value, out var first))
                        {
                            Diagnostics.Add(new Diagnostic(key.Location, DiagnosticCode.DuplicateKey, childPath,
                                $"duplicate key {Untrusted.Quote(key.Value)} (first defined at line {first.Location.Line})",
                                "remove one of the two; YAML keeps only one and which one differs between tools"));
                            continue;
                        }

                        seen[key.Value] = key;
                        entries.Add(new YEntry(key, value));
                    }

                    if (flow)
                    {
                        openFlow.Pop();
                    }

                    return new YMapping(Loc(mappingStart.Start), entries);
                }

                default:
                    throw new YamlException(current.Start, current.End, $"unexpected YAML event {current.GetType().Name}");
            }
        }
    }
}
