using Workflows.Artifacts.Store;

namespace Workflows.Artifacts.Tests;

public class ArtifactNameTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("cas/tokenize/0123abc/manifest.json")]
    [InlineData("runs/20260301-142501-3fa9c2/run.json")]
    [InlineData("data/source=arxiv/part-00001.parquet")]
    [InlineData("a.b/c_d/e-f/.hidden")]
    public void Accepts_names_made_of_allowed_segments(string name)
    {
        ArtifactName.IsValid(name).Should().BeTrue(ArtifactName.Explain(name));
        ArtifactName.Validate(name).Should().Be(name);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("/etc/passwd", "starts with '/'")]
    [InlineData("..", "dots only")]
    [InlineData("../secrets", "dots only")]
    [InlineData("cas/a/../../runs/x", "dots only")]
    [InlineData("a/./b", "dots only")]
    [InlineData("a/.../b", "dots only")]
    [InlineData("a//b", "empty segment")]
    [InlineData("a/", "ends with '/'")]
    [InlineData("a\\..\\b", "not allowed")]
    [InlineData("a b", "not allowed")]
    [InlineData("a%2F..%2Fb", "not allowed")]
    [InlineData("a:b", "not allowed")]
    [InlineData("a\nb", "not allowed")]
    [InlineData("caf\u00e9", "not allowed")]
    public void Rejects_names_that_could_escape_or_be_reinterpreted(string name, string reason)
    {
        ArtifactName.Explain(name).Should().Contain(reason);
        var act = () => ArtifactName.Validate(name);
        act.Should().Throw<ArgumentException>().WithMessage($"*{reason}*");
    }

    [Fact]
    public void Rejects_overlong_names_and_segments()
    {
        ArtifactName.IsValid(new string('a', 256)).Should().BeFalse();
        ArtifactName.IsValid(string.Join('/', Enumerable.Repeat(new string('a', 200), 6))).Should().BeFalse();
        ArtifactName.IsValid(new string('a', 255)).Should().BeTrue();
    }

    [Fact]
    public void Combine_keeps_the_result_inside_the_prefix()
    {
        ArtifactName.Combine("cas/x/", "shards/1.parquet").Should().Be("cas/x/shards/1.parquet");
        ((Action)(() => ArtifactName.Combine("cas/x/", "../y"))).Should().Throw<ArgumentException>();
        ((Action)(() => ArtifactName.Combine("cas/x/", "/abs"))).Should().Throw<ArgumentException>();
        ((Action)(() => ArtifactName.Combine("cas/x", "y"))).Should().Throw<ArgumentException>().WithMessage("*must end with '/'*");
        ((Action)(() => ArtifactName.Combine("cas/../", "y"))).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Segments_may_not_contain_slashes()
    {
        ArtifactName.ValidateSegment("tokenize").Should().Be("tokenize");
        ((Action)(() => ArtifactName.ValidateSegment("a/b"))).Should().Throw<ArgumentException>();
        ((Action)(() => ArtifactName.ValidateSegment(".."))).Should().Throw<ArgumentException>();
    }
}
