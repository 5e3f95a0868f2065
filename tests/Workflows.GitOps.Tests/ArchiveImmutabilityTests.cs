using Workflows.GitOps.Archive;
using Workflows.GitOps.GitHub;

namespace Workflows.GitOps.Tests;

public class ArchiveImmutabilityTests
{
    private static readonly ArchivedExperiment PerSource = new("per-source-5b-80k", "experiments/per-source-5b-80k.yaml", "abc", ["run-1", "run-2"]);
    private static readonly ArchivedExperiment Smoke = new("smoke", "experiments/smoke.yaml", "def", ["run-3"]);
    private static readonly ArchivedExperiment[] Archive = [PerSource, Smoke];

    [Fact]
    public void Editing_an_archived_file_fails_with_a_message_to_copy_it_under_a_new_name()
    {
        var violations = ArchiveImmutability.Check([new ChangedFile("experiments/per-source-5b-80k.yaml", "modified")], Archive);

        violations.Should().ContainSingle().Which.Message.Should().Be(
            "experiments/per-source-5b-80k.yaml is archived (experiment 'per-source-5b-80k', runs run-1, run-2) and cannot be edited: "
            + "copy it under a new name instead, e.g. experiments/per-source-5b-80k-v2.yaml with name: per-source-5b-80k-v2, change the copy, "
            + "and leave experiments/per-source-5b-80k.yaml as it is.");
    }

    [Fact]
    public void Deleting_or_renaming_an_archived_file_fails_too()
    {
        var violations = ArchiveImmutability.Check(
            [new ChangedFile("experiments/smoke.yaml", "removed"), new ChangedFile("experiments/elsewhere.yaml", "renamed", "experiments/per-source-5b-80k.yaml")],
            Archive);

        violations.Select(v => (v.Path, v.Change)).Should().Equal(
            ("experiments/smoke.yaml", "deleted"),
            ("experiments/per-source-5b-80k.yaml", "renamed to experiments/elsewhere.yaml"));
    }

    [Fact]
    public void New_files_and_files_that_are_not_archived_pass()
    {
        var files = new ChangedFile[]
        {
            new("experiments/per-source-5b-80k-v2.yaml", "added"),
            new("experiments/global-5b-80k.yaml", "modified"),
            new("README.md", "modified"),
            new("experiments/smoke.yaml", "unchanged"),
        };

        ArchiveImmutability.Check(files, Archive).Should().BeEmpty();
        ArchiveImmutability.Describe([]).Should().BeEmpty();
    }

    [Fact]
    public void A_new_file_reusing_an_archived_name_fails()
    {
        var violations = ArchiveImmutability.Check(
            [new ChangedFile("experiments/smoke-copy.yaml", "added")], Archive,
            new Dictionary<string, string> { ["experiments/smoke-copy.yaml"] = "smoke" });

        violations.Should().ContainSingle().Which.Change.Should().Be("reuses an archived name");
    }

    [Fact]
    public void A_nested_or_modified_file_that_takes_an_archived_name_fails_too()
    {
        var violations = ArchiveImmutability.Check(
            [new ChangedFile("experiments/sub/per-source-5b-80k.yaml", "added"), new ChangedFile("experiments/mine.yaml", "modified")], Archive,
            new Dictionary<string, string> { ["experiments/sub/per-source-5b-80k.yaml"] = "per-source-5b-80k", ["experiments/mine.yaml"] = "smoke" });

        violations.Select(v => (v.Path, v.Experiment, v.Change)).Should().Equal(
            ("experiments/sub/per-source-5b-80k.yaml", "per-source-5b-80k", "reuses an archived name"),
            ("experiments/mine.yaml", "smoke", "reuses an archived name"));
    }

    [Fact]
    public void The_suggested_name_counts_up_from_an_existing_version_suffix()
    {
        var v2 = new ArchivedExperiment("smoke-v2", "experiments/smoke-v2.yaml", "x", []);

        ArchiveImmutability.Check([new ChangedFile("experiments/smoke-v2.yaml", "modified")], [v2])
            .Single().Message.Should().Contain("experiments/smoke-v3.yaml with name: smoke-v3").And.Contain("no runs yet");
    }

    [Fact]
    public void Describe_lists_every_violation_for_the_job_log()
    {
        var violations = ArchiveImmutability.Check(
            [new ChangedFile("experiments/smoke.yaml", "modified"), new ChangedFile("experiments/per-source-5b-80k.yaml", "modified")], Archive);

        var text = ArchiveImmutability.Describe(violations);

        text.Should().StartWith("2 archived experiment file(s) changed; archived experiments are immutable:\n- experiments/smoke.yaml is archived");
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(3);
    }

    [Fact]
    public async Task The_json_index_round_trips_and_serves_the_check()
    {
        var index = new JsonArchiveIndex(Archive);

        var parsed = JsonArchiveIndex.Parse(index.ToJson());
        var listed = await parsed.ListExperimentsAsync();

        index.ToJson().Should().Contain("\"content_hash\": \"abc\"");
        listed.Should().BeEquivalentTo(Archive, o => o.WithStrictOrdering());
        ArchiveImmutability.Check([new ChangedFile("experiments/smoke.yaml", "modified")], listed.ToList()).Should().ContainSingle();
    }
}
