using System.Text.Json.Nodes;
using Workflows.Artifacts.ContentAddressing;

namespace Workflows.Artifacts.Tests;

public class ContentAddressingTests
{
    private static readonly string HashA = new('a', 64);
    private static readonly string HashB = new('b', 64);

    [Fact]
    public void Canonical_json_sorts_keys_drops_whitespace_and_normalises_numbers()
    {
        CanonicalJson.Canonicalize("""{ "b": [1.0, 2e0, -0.0, 0.10], "a": {"z": true, "y": null}, "c": "é\n" }""")
            .Should().Be("{\"a\":{\"y\":null,\"z\":true},\"b\":[1,2,0,0.1],\"c\":\"é\\n\"}");
    }

    [Fact]
    public void Canonical_json_rejects_duplicate_keys()
    {
        var act = () => CanonicalJson.Canonicalize("""{"a":1,"a":2}""");
        act.Should().Throw<FormatException>();
    }

    [Fact]
    public void Key_is_independent_of_how_the_inputs_were_written()
    {
        var k1 = ArtifactKey.Compute("tokenize", "1", """{"seq_len": 4096, "sources": ["arxiv", "book"]}""");
        var k2 = ArtifactKey.Compute("tokenize", "1", """{ "sources":["arxiv","book"],"seq_len":4096.0 }""");
        k1.Hash.Should().Be(k2.Hash).And.MatchRegex("^[0-9a-f]{64}$");
        k1.Prefix.Should().Be($"cas/tokenize/{k1.Hash}/");
        k1.ManifestName.Should().Be($"cas/tokenize/{k1.Hash}/manifest.json");
    }

    [Fact]
    public void Every_part_of_the_key_changes_the_hash()
    {
        var inputs = new JsonObject { ["seq_len"] = 4096 };
        var artifacts = new Dictionary<string, string> { ["corpus"] = HashA };
        var baseKey = ArtifactKey.Compute("pack", "1", inputs, artifacts).Hash;

        ArtifactKey.Compute("pack2", "1", inputs, artifacts).Hash.Should().NotBe(baseKey);
        ArtifactKey.Compute("pack", "2", inputs, artifacts).Hash.Should().NotBe(baseKey);
        ArtifactKey.Compute("pack", "1", new JsonObject { ["seq_len"] = 8192 }, artifacts).Hash.Should().NotBe(baseKey);
        ArtifactKey.Compute("pack", "1", inputs, new Dictionary<string, string> { ["corpus"] = HashB }).Hash.Should().NotBe(baseKey);
        ArtifactKey.Compute("pack", "1", inputs, new Dictionary<string, string> { ["other"] = HashA }).Hash.Should().NotBe(baseKey);
        ArtifactKey.Compute("pack", "1", inputs).Hash.Should().NotBe(baseKey);
        // and the same parts give the same key
        ArtifactKey.Compute("pack", "1", new JsonObject { ["seq_len"] = 4096 }, new Dictionary<string, string> { ["corpus"] = HashA }).Hash.Should().Be(baseKey);
    }

    [Fact]
    public void Input_artifact_order_does_not_matter_but_roles_do()
    {
        var a = ArtifactKey.Compute("mix", "1", "{}", new Dictionary<string, string> { ["train"] = HashA, ["val"] = HashB });
        var b = ArtifactKey.Compute("mix", "1", "{}", new Dictionary<string, string> { ["val"] = HashB, ["train"] = HashA });
        var swapped = ArtifactKey.Compute("mix", "1", "{}", new Dictionary<string, string> { ["train"] = HashB, ["val"] = HashA });
        a.Hash.Should().Be(b.Hash);
        swapped.Hash.Should().NotBe(a.Hash);
    }

    [Theory]
    [InlineData("../runs")]
    [InlineData("a/b")]
    [InlineData("")]
    [InlineData("tok enize")]
    public void Activity_names_that_could_escape_cas_are_rejected(string activity)
    {
        var act = () => ArtifactKey.Compute(activity, "1", "{}");
        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Input_artifact_hashes_must_be_sha256()
    {
        var act = () => ArtifactKey.Compute("a", "1", "{}", new Dictionary<string, string> { ["x"] = "not-a-hash" });
        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Manifest_content_hash_ignores_writer_time_and_order_but_not_content()
    {
        var key = ArtifactKey.Compute("a", "1", "{}");
        Manifest Make(string attempt, params ManifestEntry[] entries) => new()
        {
            Activity = "a", ActivityVersion = "1", KeyHash = key.Hash, AttemptId = attempt, Producer = attempt,
            CreatedAt = DateTimeOffset.UtcNow, Entries = entries,
        };
        var m1 = Make("attempt-1", new("x", key.Prefix + "attempt-1/x", 3, HashA), new("y", key.Prefix + "attempt-1/y", 4, HashB));
        var m2 = Make("attempt-2", new("y", key.Prefix + "attempt-2/y", 4, HashB), new("x", key.Prefix + "attempt-2/x", 3, HashA));
        var m3 = Make("attempt-3", new("x", key.Prefix + "attempt-3/x", 3, HashB), new("y", key.Prefix + "attempt-3/y", 4, HashB));
        m1.ContentHash.Should().Be(m2.ContentHash);
        m3.ContentHash.Should().NotBe(m1.ContentHash);
    }

    [Fact]
    public void Manifest_validation_rejects_blobs_outside_the_key_prefix()
    {
        var key = ArtifactKey.Compute("a", "1", "{}");
        var m = new Manifest
        {
            Activity = "a", ActivityVersion = "1", KeyHash = key.Hash, AttemptId = "attempt-1", Producer = "t",
            CreatedAt = DateTimeOffset.UtcNow, Entries = [new("x", "runs/other/secret", 1, HashA)],
        };
        var act = () => m.Validate();
        act.Should().Throw<InvalidDataException>().WithMessage("*outside its prefix*");
    }
}
