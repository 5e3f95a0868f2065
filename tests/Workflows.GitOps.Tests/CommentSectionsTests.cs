using Workflows.GitOps.Comments;

namespace Workflows.GitOps.Tests;

public class CommentSectionsTests
{
    [Fact]
    public void A_new_body_starts_with_the_marker_and_holds_the_one_section()
    {
        var body = CommentSections.Compose("smoke", null, CommentSections.Plan, "the plan");

        body.Should().Be("<!-- wf:experiment=smoke -->\n<!-- wf:section=plan -->\nthe plan\n\n<!-- wf:end=plan -->\n");
        CommentMarker.ExperimentOf(body).Should().Be("smoke");
    }

    [Fact]
    public void Setting_one_section_keeps_the_other_and_the_run_comes_first()
    {
        var planned = CommentSections.Compose("smoke", null, CommentSections.Plan, "plan v1");
        var ran = CommentSections.Compose("smoke", planned, CommentSections.Run, "results");
        var replanned = CommentSections.Compose("smoke", ran, CommentSections.Plan, "plan v2");

        replanned.Should().Be("<!-- wf:experiment=smoke -->\n<!-- wf:section=run -->\nresults\n\n<!-- wf:end=run -->\n<!-- wf:section=plan -->\nplan v2\n\n<!-- wf:end=plan -->\n");
        CommentSections.Compose("smoke", replanned, CommentSections.Plan, "plan v2").Should().Be(replanned, "composition is idempotent");
    }

    [Fact]
    public void Unknown_sections_and_bad_names_are_programming_errors()
    {
        ((Action)(() => CommentSections.Compose("smoke", null, "logs", "x"))).Should().Throw<ArgumentException>();
        ((Action)(() => CommentMarker.For("Smoke -->"))).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Bodies_over_GitHub_s_limit_are_cut_with_a_note()
    {
        var body = CommentSections.Compose("smoke", null, CommentSections.Plan, new string('x', 70_000));

        body.Length.Should().Be(CommentSections.MaxBodyLength);
        body.Should().StartWith("<!-- wf:experiment=smoke -->").And.EndWith("job summary)_\n");
    }

    [Theory]
    [InlineData("<!-- wf:experiment=smoke -->\nx", "smoke")]
    [InlineData("  \n<!-- wf:experiment=per-source-5b-80k -->", "per-source-5b-80k")]
    [InlineData("> <!-- wf:experiment=smoke -->", null)]
    [InlineData("text <!-- wf:experiment=smoke -->", null)]
    [InlineData("<!-- wf:experiment=Smoke -->", null)]
    [InlineData(null, null)]
    public void The_marker_counts_only_at_the_start(string? body, string? expected) =>
        CommentMarker.ExperimentOf(body).Should().Be(expected);
}
