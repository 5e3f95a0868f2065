using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Workflows.Engine.Telemetry;

/// <summary>
/// Structured logs as JSON lines (<c>{"time","level","category","message", ...state}</c>), which log collectors
/// (Container Insights, Loki) parse without configuration. Every message and exception text passes through
/// <see cref="SecretRedaction"/> first. One event is one line: stack traces (DTFx puts them in its messages) are
/// cut to their first line (WF_DEBUG=1 keeps them), and a failure that means storage cannot be used gets a
/// <c>storage</c> field naming the account and endpoint (never a key).
/// </summary>
/// <param name="storage">Where storage is, once known (<see cref="Workflows.Artifacts.StorageConnection.Description"/>).</param>
public sealed partial class JsonLineLoggerProvider(TextWriter output, Func<string?>? storage = null) : ILoggerProvider
{
    private static readonly bool KeepStacks = Environment.GetEnvironmentVariable("WF_DEBUG") == "1";
    private readonly Lock _write = new();

    /// <summary>The text without stack-trace lines, on one line.</summary>
    internal static string OneLine(string text) => KeepStacks || !text.Contains('\n', StringComparison.Ordinal)
        ? text
        : string.Join(" | ", text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0 && !StackLine().IsMatch(l)));

    [GeneratedRegex(@"^\s+at \S|^\s*--- End of")]
    private static partial Regex StackLine();

    /// <summary>"account at endpoint: why" when the event is about storage that cannot be used, else null.</summary>
    internal string? StorageProblem(Exception? exception, string message)
    {
        var why = exception is null ? null : Workflows.Artifacts.Store.StorageFailure.Describe(exception);
        why ??= StorageText().Match(message) is { Success: true } m ? m.Value : null;
        return why is null ? null : $"{storage?.Invoke() ?? "the storage account"}: {why}";
    }

    [GeneratedRegex("Retry failed after \\d+ tries|The response ended prematurely|Connection refused|No connection could be made|Name or service not known|ContainerNotFound")]
    private static partial Regex StorageText();

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
            // Relaxed escaping: log lines are read by people and collectors, never embedded in HTML ('it' stays 'it', not \u0027).
            using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                json.WriteStartObject();
                json.WriteString("time", DateTimeOffset.UtcNow);
                json.WriteString("level", logLevel.ToString());
                json.WriteString("category", category);
                var message = SecretRedaction.Redact(SecretRedaction.MaskSecretFields(formatter(state, exception), state));
                json.WriteString("message", OneLine(message));
                if (state is IEnumerable<KeyValuePair<string, object?>> fields)
                {
                    foreach (var (key, value) in fields)
                    {
                        if (key != "{OriginalFormat}" && value is not null)
                        {
                            json.WriteString(key, SecretRedaction.IsSecretName(key)
                                ? SecretRedaction.Mask
                                : OneLine(SecretRedaction.Redact(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "")));
                        }
                    }
                }

                if (exception is not null)
                {
                    json.WriteString("exception", OneLine(SecretRedaction.Redact($"{exception.GetType().Name}: {exception.Message}")));
                }

                if (provider.StorageProblem(exception, message) is { } problem)
                {
                    json.WriteString("storage", SecretRedaction.Redact(problem));
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
