using System.Text.RegularExpressions;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed partial class MalformedCorpusTests
{
    [GeneratedRegex(@"^# expect: (?<code>\w+)(?: (?<line>\d+):(?<col>\d*))?(?: (?<text>.*))?$")]
    private static partial Regex Expectation();

    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(RepoPaths.TestData("Malformed"), "*.yaml").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    [Fact]
    public void The_corpus_has_at_least_40_cases() => Files().Count.Should().BeGreaterThanOrEqualTo(40);

    [Theory]
    [MemberData(nameof(Files))]
    public void Each_file_reports_exactly_its_expected_errors(string name)
    {
        var path = Path.Combine(RepoPaths.TestData("Malformed"), name);
        var expected = File.ReadLines(path)
            .TakeWhile(l => l.StartsWith("# expect:", StringComparison.Ordinal))
            .Select(l => Expectation().Match(l))
            .ToList();
        expected.Should().NotBeEmpty("every corpus file states its expected errors");
        expected.Should().OnlyContain(m => m.Success, "expectation lines must be '# expect: CODE LINE:COL text'");

        var result = ExperimentLoader.LoadFile(path, new LoadOptions(PolicyMode.Enforce, RepoPaths.Workflows));

        result.IsValid.Should().BeFalse();
        result.Spec.Should().BeNull();
        var remaining = result.Diagnostics.ToList();
        foreach (var m in expected)
        {
            var code = Enum.Parse<DiagnosticCode>(m.Groups["code"].Value);
            var match = remaining.FirstOrDefault(d =>
                d.Code == code
                && (!m.Groups["line"].Success || d.Location.Line == int.Parse(m.Groups["line"].Value, System.Globalization.CultureInfo.InvariantCulture))
                && (!m.Groups["col"].Success || m.Groups["col"].Value.Length == 0 || d.Location.Column == int.Parse(m.Groups["col"].Value, System.Globalization.CultureInfo.InvariantCulture))
                && (!m.Groups["text"].Success || (d.Message + " " + d.Hint).Contains(m.Groups["text"].Value, StringComparison.Ordinal)));
            match.Should().NotBeNull($"expected {m.Value[10..]} among:\n{string.Join("\n", result.Diagnostics)}");
            remaining.Remove(match!);
            match!.Location.File.Should().Be(path);
        }

        remaining.Should().BeEmpty("no errors beyond the expected ones");
    }
}
