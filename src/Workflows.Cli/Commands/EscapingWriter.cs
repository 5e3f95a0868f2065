using System.Text;
using Workflows.Experiments.Validation;

namespace Workflows.Cli.Commands;

/// <summary>
/// What every plain-text command output goes through: newlines pass, every other control, bidi or zero-width character
/// is written as an escape (<see cref="Untrusted.Escape"/>). Messages that quote author text escape it where they are
/// built (so a newline in it cannot start a forged log line); this writer is the backstop for the ones that do not
/// (an exception message that carries a file name or a byte of a file).
/// </summary>
public sealed class EscapingWriter(TextWriter inner) : TextWriter
{
    private char pendingHigh;

    public override Encoding Encoding => inner.Encoding;

    public override IFormatProvider FormatProvider => inner.FormatProvider;

    [System.Diagnostics.CodeAnalysis.AllowNull]
    public override string NewLine
    {
        get => inner.NewLine;
        set => inner.NewLine = value;
    }

    public override void Write(char value)
    {
        if (pendingHigh != '\0')
        {
            var high = pendingHigh;
            pendingHigh = '\0';
            if (char.IsLowSurrogate(value))
            {
                inner.Write(Untrusted.Escape(new string([high, value])));
                return;
            }

            inner.Write(Untrusted.Escape(high.ToString()));
        }

        if (char.IsHighSurrogate(value))
        {
            pendingHigh = value;
            return;
        }

        inner.Write(value == '\n' ? "\n" : Untrusted.Escape(value.ToString()));
    }

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        if (pendingHigh != '\0' || char.IsHighSurrogate(value[^1]))
        {
            foreach (var c in value)
            {
                Write(c);
            }

            return;
        }

        inner.Write(Untrusted.EscapeLines(value));
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void WriteLine(string? value)
    {
        Write(value);
        Write(NewLine);
    }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync() => inner.FlushAsync();

    protected override void Dispose(bool disposing)
    {
        if (disposing && pendingHigh != '\0')
        {
            inner.Write(Untrusted.Escape(pendingHigh.ToString()));
            pendingHigh = '\0';
        }

        base.Dispose(disposing);
    }
}
