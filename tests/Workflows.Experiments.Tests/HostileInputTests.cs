using System.Diagnostics;
using System.Text;
using Workflows.Experiments.Validation;
using Workflows.Experiments.Yaml;

namespace Workflows.Experiments.Tests;

/// <summary>Files from pull requests are untrusted: each hostile shape is refused fast, with a clear message, in bounded memory.</summary>
public sealed class HostileInputTests
{
    private static (LoadResult Result, TimeSpan Elapsed, long Allocated) Measure(Func<LoadResult> load)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        var result = load();
        return (result, watch.Elapsed, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Billion_laughs_alias_bomb_is_refused_at_the_first_anchor()
    {
        var sb = new StringBuilder("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for (var i = 1; i < 10; i++)
        {
            sb.Append($"a{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9))}]\n");
        }

        var (result, elapsed, allocated) = Measure(() => ExperimentLoader.LoadText("bomb.yaml", sb.ToString()));

        result.Diagnostics.Should().ContainSingle().Which.Code.Should().Be(DiagnosticCode.HostileInput);
        result.Diagnostics[0].Message.Should().Contain("anchor '&a0'");
        result.Diagnostics[0].Location.Line.Should().Be(1);
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
        allocated.Should().BeLessThan(10 << 20);
    }

    [Fact]
    public void Deep_nesting_is_refused_with_its_position()
    {
        var depth = 10_000;
        var text = "name: x\nmodel: " + new string('[', depth) + new string(']', depth) + "\n";

        var (result, elapsed, allocated) = Measure(() => ExperimentLoader.LoadText("deep.yaml", text));

        result.Diagnostics.Should().ContainSingle().Which.Message.Should().Contain("nesting deeper than 32 levels");
        result.Diagnostics[0].Location.Line.Should().Be(2);
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
        allocated.Should().BeLessThan(20 << 20);
    }

    [Fact]
    public void A_100_MB_file_is_refused_without_being_read()
    {
        var path = Path.Combine(Path.GetTempPath(), $"wf-huge-{Guid.NewGuid():N}.yaml");
        try
        {
            using (var stream = File.Create(path))
            {
                stream.SetLength(100L << 20);
            }

            var (result, elapsed, allocated) = Measure(() => ExperimentLoader.LoadFile(path));

            result.Diagnostics.Should().ContainSingle().Which.Code.Should().Be(DiagnosticCode.HostileInput);
            result.Diagnostics[0].Message.Should().Contain("104,857,600 bytes").And.Contain("limited to 1,048,576");
            elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
            allocated.Should().BeLessThan(1 << 20, "the file must not be read");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Binary_junk_is_refused_before_parsing()
    {
        var junk = new byte[4096];
        new Random(7).NextBytes(junk);
        junk[100] = 0;

        var result = YamlTreeReader.ReadBytes("junk.yaml", junk);

        result.Root.Should().BeNull();
        result.Diagnostics.Should().ContainSingle().Which.Code.Should().Be(DiagnosticCode.HostileInput);
    }

    [Fact]
    public void Invalid_utf8_is_reported_at_its_line_and_column()
    {
        var bytes = Encoding.UTF8.GetBytes("name: ok\nmodel:\n  base: ll").Concat(new byte[] { 0xC3, 0x28 }).Concat(Encoding.UTF8.GetBytes("ama\n")).ToArray();

        var result = YamlTreeReader.ReadBytes("latin1.yaml", bytes);

        var d = result.Diagnostics.Should().ContainSingle().Which;
        d.Message.Should().Contain("not valid UTF-8");
        d.Location.Line.Should().Be(3);
        d.Location.Column.Should().Be(11);
    }

    [Fact]
    public void Many_nodes_are_refused()
    {
        var text = "name: x\nmodel:\n  base: [" + string.Join(",", Enumerable.Repeat("1", 20_000)) + "]\n";

        var (result, elapsed, _) = Measure(() => ExperimentLoader.LoadText("wide.yaml", text));

        result.Diagnostics.Should().ContainSingle().Which.Message.Should().Contain("more than 10,000 YAML nodes");
        elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5), "generous: the machine is shared; the point is no blow-up");
    }

    [Fact]
    public void Custom_tags_are_not_executed_but_reported()
    {
        var result = ExperimentLoader.LoadText("tag.yaml", "name: !!python/object:os.system x\nmodel: { base: tiny }\ndata: { token_budget: 1M, context: 1K }\n");

        result.Diagnostics.Should().Contain(d => d.Message.Contains("tag", StringComparison.Ordinal) && d.Location.Line == 1);
    }
}
