using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Workflows.Engine.Telemetry;

/// <summary>
/// Structured logs as JSON lines (<c>{"time","level","category","message", ...state}</c>), which log collectors
/// (Container Insights, Loki) parse without configuration. Every message and exception text passes through
/// <see cref="SecretRedaction"/> first.
/// </summary>
public sealed class JsonLineLoggerProvider(TextWriter output) : ILoggerProvider
{
    private readonly Lock _write = new();

    public ILogger CreateLogger(string categoryName) => new JsonLineLogger(categoryName, this);

    public void Dispose()
    {
    }

    internal void Write(string line)
    {
        lock (_write)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }

    private sealed class JsonLineLogger(string category, JsonLineLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("time", DateTimeOffset.UtcNow);
                json.WriteString("level", logLevel.ToString());
                json.WriteString("category", category);
                json.WriteString("message", SecretRedaction.Redact(SecretRedaction.MaskSecretFields(formatter(state, exception), state)));
                if (state is IEnumerable<KeyValuePair<string, object?>> fields)
                {
                    foreach (var (key, value) in fields)
                    {
                        if (key != "{OriginalFormat}" && value is not null)
                        {
                            json.WriteString(key, SecretRedaction.IsSecretName(key)
                                ? SecretRedaction.Mask
                                : SecretRedaction.Redact(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? ""));
                        }
                    }
                }

                if (exception is not null)
                {
                    json.WriteString("exception", SecretRedaction.Redact($"{exception.GetType().Name}: {exception.Message}"));
                }

                json.WriteEndObject();
            }

            provider.Write(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        }
    }
}

/// <summary>
/// Removes credentials from text that is about to be logged or shown: account keys, SAS signatures and whole
/// connection-string parts, wherever an exception message or a third-party log line might carry them. A second
/// line of defence: wf's own messages never include them in the first place.
/// </summary>
public static partial class SecretRedaction
{
    public const string Mask = "***";

    /// <summary>A structured-log field whose name says it holds a credential (its value is masked whole, whatever it looks like).</summary>
    public static bool IsSecretName(string name) =>
        SecretName().IsMatch(name);

    /// <summary>Masks, in a formatted message, the values of fields with secret names (the formatter has already inlined them).</summary>
    public static string MaskSecretFields<TState>(string message, TState state)
    {
        if (state is IEnumerable<KeyValuePair<string, object?>> fields)
        {
            foreach (var (key, value) in fields)
            {
                if (IsSecretName(key) && Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) is { Length: > 0 } text)
                {
                    message = message.Replace(text, Mask, StringComparison.Ordinal);
                }
            }
        }

        return message;
    }

    [GeneratedRegex("(^|[^a-z])(sig|signature|key|secret|token|password|connectionstring|sas|credential)s?($|[^a-z])|Key$|Secret|Token|Password|ConnectionString|Signature|Sig$|Sas", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();

    public static string Redact(string text) =>
        string.IsNullOrEmpty(text) ? text : SecretPart().Replace(text, m => m.Groups["name"].Value + Mask);

    // AccountKey=..., SharedAccessSignature=..., sig=... (a SAS query parameter), and bearer tokens.
    [GeneratedRegex(@"(?<name>(?:AccountKey|SharedAccessSignature|SharedAccessKey)\s*=\s*|[?&]sig=|Bearer\s+)[^;&\s""']+", RegexOptions.IgnoreCase)]
    private static partial Regex SecretPart();
}
