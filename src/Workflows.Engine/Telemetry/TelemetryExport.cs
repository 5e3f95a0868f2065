using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Workflows.Engine.Telemetry;

/// <summary>
/// Exports the engine's traces, metrics and logs over OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (the
/// exporter reads the standard <c>OTEL_EXPORTER_OTLP_*</c> variables itself: protocol, headers, timeout). Without
/// the variable nothing is exported and nothing listens. <c>OTEL_SERVICE_NAME</c> defaults to <c>wf-ROLE</c>.
/// </summary>
public sealed class TelemetryExport : IDisposable
{
    public const string EndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    private readonly TracerProvider _tracer;
    private readonly MeterProvider _meter;

    private TelemetryExport(TracerProvider tracer, MeterProvider meter)
    {
        _tracer = tracer;
        _meter = meter;
    }

    public static bool IsConfigured(Func<string, string?>? getEnvironmentVariable = null) =>
        !string.IsNullOrWhiteSpace((getEnvironmentVariable ?? Environment.GetEnvironmentVariable)(EndpointVariable));

    /// <summary>Starts OTLP export of traces and metrics; null when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is unset.</summary>
    public static TelemetryExport? StartOtlp(string serviceName)
    {
        if (!IsConfigured())
        {
            return null;
        }

        var resource = ResourceBuilder.CreateDefault().AddService(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") ?? serviceName);
        var tracer = Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource).AddSource(EngineTelemetry.Name).AddOtlpExporter().Build();
        var meter = Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource).AddMeter(EngineTelemetry.Name).AddOtlpExporter().Build();
        return new TelemetryExport(tracer, meter);
    }

    /// <summary>
    /// The process's logger factory: one JSON object per line on <paramref name="output"/> (stderr in the CLI) at
    /// <paramref name="level"/> and above, plus OTLP log export when configured. DTFx's own categories are held at
    /// Warning unless the level is Debug or lower (at Information it logs every queue poll).
    /// </summary>
    /// <param name="storage">Where storage is, once known: named in log lines about storage that cannot be used.</param>
    public static ILoggerFactory CreateLoggerFactory(LogLevel level, TextWriter output, bool otlp = false, Func<string?>? storage = null) =>
        LoggerFactory.Create(builder =>
        {
            builder.SetMinimumLevel(level);
            builder.AddFilter("DurableTask", level <= LogLevel.Debug ? level : LogLevel.Warning);
            builder.AddProvider(new JsonLineLoggerProvider(output, storage));
            if (otlp)
            {
                builder.AddOpenTelemetry(o => o.AddOtlpExporter());
            }
        });

    public void Dispose()
    {
        _tracer.Dispose();
        _meter.Dispose();
    }
}
