namespace Workflows.Experiments.Validation;

/// <summary>A place in a source file: 1-based line and column.</summary>
public readonly record struct SourceLocation(string File, int Line, int Column)
{
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}" : File;
}

public enum DiagnosticCode
{
    YamlSyntax,
    HostileInput,
    UnknownKey,
    DuplicateKey,
    MissingKey,
    WrongType,
    OutOfRange,
    InvalidValue,
    UnknownSource,
    WeightsDoNotSumToOne,
    PolicyViolation,
    UnknownStepType,
    Cycle,
    UnboundParameter,
    UnknownDependency,

    /// <summary>A path the experiment names may not be read (outside the repository and data roots, a FIFO, a device, ...).</summary>
    UnsafePath,
}

/// <summary>
/// One validation error: where (file:line:column), what was wrong, and how to fix it.
/// <see cref="Path"/> is the dotted key path (e.g. <c>data.upsampling.mode</c>) for tools and tests.
/// </summary>
public sealed record Diagnostic(SourceLocation Location, DiagnosticCode Code, string Path, string Message, string? Hint)
{
    /// <summary>The line <c>wf validate</c> prints; escaped (<see cref="Untrusted.Escape"/>), since file names and messages hold author text.</summary>
    public override string ToString() => Untrusted.Escape(
        Hint is null ? $"{Location}: error {Code}: {Message}" : $"{Location}: error {Code}: {Message} (hint: {Hint})", MaxPrintedChars);

    /// <summary>A diagnostic line never needs more; a longer one is someone's bulk text.</summary>
    public const int MaxPrintedChars = 2000;
}

/// <summary>Thrown by APIs that need a valid document; carries every diagnostic of the file.</summary>
public sealed class ValidationException(IReadOnlyList<Diagnostic> diagnostics)
    : Exception(diagnostics.Count == 0 ? "invalid input" : string.Join(Environment.NewLine, diagnostics))
{
    public IReadOnlyList<Diagnostic> Diagnostics { get; } = diagnostics;
}
