using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Telemetry;

namespace Workflows.Engine.Tests;

/// <summary>Traces and metrics of a real run on the fixture's worker, collected with OpenTelemetry's in-memory exporter.</summary>
[Collection(EngineCollection.Name)]
public sealed class TelemetryTests(EngineFixture engine)
{
    [Fact]
    public async Task A_run_emits_activity_step_and_run_spans_and_duration_and_retry_metrics()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        using var tracer = Sdk.CreateTracerProviderBuilder().AddSource(EngineTelemetry.Name).AddInMemoryExporter(spans).Build()!;
        using var meter = Sdk.CreateMeterProviderBuilder().AddMeter(EngineTelemetry.Name).AddInMemoryExporter(metrics).Build()!;
        var test = "otel" + Guid.NewGuid().ToString("N")[..8];
        engine.Failures[test] = (Item: 1, Times: 1);

        var view = await engine.RunAsync(engine.Request(EngineFixture.Step("items", "test-items", 4, test)));

        view.Record.Status.Should().Be(RunStatus.Succeeded, view.Record.Error);
        tracer.ForceFlush();
        meter.ForceFlush();
        var runId = view.Record.RunId;
        var mine = spans.Where(s => (string?)s.GetTagItem("wf.run_id") == runId).ToList();
        var items = mine.Where(s => s.DisplayName == "wf.activity test-items.item").ToList();
        items.Should().HaveCount(5, "4 items, one of them twice");
        items.Count(s => s.Status == ActivityStatusCode.Error).Should().Be(1);
        mine.Should().Contain(s => s.DisplayName == "wf.step items" && (string?)s.GetTagItem("wf.outcome") == "succeeded");
        var run = mine.Single(s => s.DisplayName == "wf.run");
        run.Duration.Should().BePositive();
        run.StartTimeUtc.Should().BeOnOrBefore(items.Min(s => s.StartTimeUtc), "the run span uses the orchestration's own start time");

        double Sum(string name, Func<MetricPoint, double> value) =>
            metrics.Where(m => m.Name == name).SelectMany(m => Points(m)).Sum(value);
        Sum("wf.step.retries", p => p.GetSumLong()).Should().BeGreaterThanOrEqualTo(1);
        Sum("wf.activity.executions", p => p.GetSumLong()).Should().BeGreaterThanOrEqualTo(5);
        Sum("wf.activity.duration", p => p.GetHistogramCount()).Should().BeGreaterThanOrEqualTo(5);
        metrics.Should().Contain(m => m.Name == "wf.run.duration");
    }

    [Fact]
    public async Task A_hostile_run_id_is_refused_before_anything_is_written()
    {
        var request = engine.Request(EngineFixture.Step("items", "test-items", 1, "hostile"));
        foreach (var id in new[] { "..", "../x", "%2e%2e", "a/b" })
        {
            var act = () => engine.Client.SubmitAsync(request, id);
            (await act.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("run id");
        }

        var names = new List<string>();
        await foreach (var blob in engine.Client.Store.ListAsync("runs/"))
        {
            names.Add(blob.Name);
        }

        names.Should().NotContain(n => n.Contains("%2e", StringComparison.Ordinal) || n.StartsWith("runs/../", StringComparison.Ordinal) || n.StartsWith("runs/a/", StringComparison.Ordinal));
    }

    private static IEnumerable<MetricPoint> Points(Metric metric)
    {
        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            yield return point;
        }
    }
}
