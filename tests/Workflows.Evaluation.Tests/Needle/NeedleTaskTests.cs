using Workflows.Evaluation.Needle;

namespace Workflows.Evaluation.Tests.Needle;

public sealed class NeedleTaskTests
{
    [Fact]
    public void Ruler_needles_are_reproducible_from_the_seed_and_follow_the_template()
    {
        var a = RulerNeedles.Create(keys: 4, valuesPerKey: 2, RulerValueKind.Number, seed: 7);
        var b = RulerNeedles.Create(keys: 4, valuesPerKey: 2, RulerValueKind.Number, seed: 7);
        var c = RulerNeedles.Create(keys: 4, valuesPerKey: 2, RulerValueKind.Number, seed: 8);
        a.Should().BeEquivalentTo(b, o => o.WithStrictOrdering());
        a.Needles.Should().NotEqual(c.Needles);

        a.Needles.Should().HaveCount(8);
        a.Needles.Should().OnlyContain(n => System.Text.RegularExpressions.Regex.IsMatch(n, @"^ One of the special magic numbers for [a-z]+-[a-z]+ is: \d{7}\. $"));
        a.ExpectedValues.Should().HaveCount(2);
        var key = System.Text.RegularExpressions.Regex.Match(a.Question, "for (.+) mentioned").Groups[1].Value;
        a.Needles.Count(n => n.Contains($" for {key} is:", StringComparison.Ordinal)).Should().Be(2);
        foreach (var v in a.ExpectedValues)
        {
            a.Needles.Should().Contain(n => n.Contains($" for {key} is: {v}.", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Ruler_uuid_values_are_version_4()
    {
        var task = RulerNeedles.Create(keys: 1, valuesPerKey: 3, RulerValueKind.Uuid, seed: 1);
        foreach (var v in task.ExpectedValues)
        {
            Guid.TryParse(v, out var parsed).Should().BeTrue();
            parsed.ToString().Should().Be(v);
            v[14].Should().Be('4');
            "89ab".Should().Contain(v[19].ToString());
        }
        task.Question.Should().Contain("special magic uuids for");
    }

    [Fact]
    public void Several_needles_are_spread_over_the_remaining_depth_each_after_a_period()
    {
        var dir = TestData.NewTempDirectory();
        try
        {
            File.WriteAllText(Path.Combine(dir, "a.txt"), "The cat sat. The dog ran. The sun set. The man won. ");
            var hf = HfTokenizerBehaviour.For(TestData.Gpt2);
            var task = NeedleTask.GkamradtPizza;
            var builder = new NeedlePromptBuilder(hf, Haystack.LoadDirectory(dir), task, 2000);
            var prompt = builder.Build(2000, 40);

            // gkamradt: first needle at depth 40, then 40 + 20, then 60 + 20 (interval (100 - 40) / 3), each point an
            // int() of the *current* length (which grows by each needle), moved back to a sentence end (4-token sentences).
            var m = 2000 - 200 - task.Needles.Sum(n => hf.Encode(n, true).Count);
            var lengths = task.Needles.Select(n => hf.Encode(n, true).Count).ToArray();
            var p1 = (int)(m * 0.4) / 4 * 4;
            var p2 = (int)((m + lengths[0]) * 0.6);
            var p3 = (int)((m + lengths[0] + lengths[1]) * 0.8);
            // Later targets fall in haystack that comes after the earlier needles, whose sentence ends are shifted
            // by those needles' lengths.
            var ip2 = p1 + lengths[0] + ((p2 - p1 - lengths[0]) / 4 * 4);
            var ip3 = ip2 + lengths[1] + ((p3 - ip2 - lengths[1]) / 4 * 4);
            prompt.InsertionPoints.Should().Equal(p1, ip2, ip3);

            prompt.NeedleSpans.Should().HaveCount(3);
            prompt.NeedleSpans.Select(s => s.Start).Should().BeInAscendingOrder();
            for (var k = 0; k < 3; k++)
            {
                var span = prompt.NeedleSpans[k];
                TestData.Gpt2.Decode(prompt.PromptIds.Skip(span.Start).Take(span.Length).ToList()).Trim()
                    .Should().Be(task.Needles[k].Trim());
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
