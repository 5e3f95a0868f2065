using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class CanonicalFormTests
{
    private const string Reference = """
        name: hash-test
        description: first wording
        model:
          base: llama-2-7b
          rope: { theta: 500000 }
        data:
          token_budget: 5B
          context: 80K
          mix: natural
          upsampling: { mode: per-source, short_keep_ratio: 0.1 }
        training:
          lr: 2.0e-5
        """;

    private static ExperimentSpec Load(string yaml) => ExperimentLoader.LoadText("x.yaml", yaml, new LoadOptions(PolicyMode.Off)).Require();

    private static string HashOf(string yaml) => CanonicalForm.Hash(Load(yaml));

    [Fact]
    public void Reformatting_does_not_change_the_hash()
    {
        var reformatted = """
            # same experiment, written differently
            training: {lr: 0.00002}
            data:
              upsampling:
                short_keep_ratio: 1e-1
                mode: per-source
              context: 81920
              token_budget: 5000000000
              mix:
                CommonCrawl: 0.53374772
                C4: 0.26609933
                Github: 0.05004782
                Book: 0.0414836
                ArXiv: 0.04290379
                Wikipedia: 0.03402128
                StackExchange: 0.03169647
            model: {rope: {theta: 5.0e5}, base: "llama-2-7b"}
            name: another-name
            description: "cosmetic fields do not count"
            gitops: { owner: someone, baseline: original-5b-80k }
            training_defaults_written_out_below: null
            """.Replace("training_defaults_written_out_below: null\n", "", StringComparison.Ordinal)
            .Replace("training_defaults_written_out_below: null", "", StringComparison.Ordinal);

        HashOf(reformatted).Should().Be(HashOf(Reference));
    }

    [Fact]
    public void Writing_defaults_explicitly_does_not_change_the_hash()
    {
        var explicitDefaults = Reference + """

              schedule: constant
              warmup_steps: 0
              batch_tokens: 4M
              precision: bf16
            resources: { gpu: a100-80g, gpu_count: 8 }
            workflow: continual-pretraining
            profile: full
            """;

        HashOf(explicitDefaults).Should().Be(HashOf(Reference));
    }

    public static TheoryData<string, string> SemanticChanges() => new()
    {
        { "theta: 500000", "theta: 1000000" },
        { "token_budget: 5B", "token_budget: 1B" },
        { "context: 80K", "context: 64K" },
        { "mix: natural", "mix: { CommonCrawl: 0.5, C4: 0.5 }" },
        { "mode: per-source", "mode: global" },
        { "short_keep_ratio: 0.1", "short_keep_ratio: 0.2" },
        { "lr: 2.0e-5", "lr: 3.0e-5" },
        { "base: llama-2-7b", "base: llama-2-13b" },
        { "rope: { theta: 500000 }", "rope: { theta: 500000, scaling: { type: dynamic, factor: 10 } }" },
        { "training:\n  lr: 2.0e-5", "training:\n  lr: 2.0e-5\n  batch_tokens: 2M" },
        { "training:\n  lr: 2.0e-5", "training:\n  lr: 2.0e-5\n  max_steps: 10" },
        { "training:\n  lr: 2.0e-5", "training:\n  lr: 2.0e-5\nevaluation: { needle: { depths: 5 } }" },
        { "training:\n  lr: 2.0e-5", "training:\n  lr: 2.0e-5\nevaluation: { needle: { scorer: rouge1 } }" },
        { "training:\n  lr: 2.0e-5", "training:\n  lr: 2.0e-5\nevaluation: { domain_loss: { buckets: [0-8K] } }" },
        { "training:\n  lr: 2.0e-5", "training:\n  lr: 2.0e-5\nresources: { gpu: h200 }" },
        { "context: 80K", "context: 80K\n  seed: 42" },
        { "context: 80K", "context: 80K\n  tokenizer: gpt2" },
        { "context: 80K", "context: 80K\n  shards: 8" },
        { "name: hash-test", "name: hash-test\nprofile: dev" },
    };

    [Theory]
    [MemberData(nameof(SemanticChanges))]
    public void Changing_a_semantic_field_changes_the_hash(string from, string to)
    {
        var changed = Reference.Replace(from, to, StringComparison.Ordinal);
        changed.Should().NotBe(Reference, "the test must actually change the file");

        HashOf(changed).Should().NotBe(HashOf(Reference));
    }

    [Fact]
    public void Canonical_json_is_sorted_explicit_and_free_of_cosmetic_fields()
    {
        var json = CanonicalForm.ToJson(Load(Reference));

        json.Should().StartWith("{\"canonical_version\":2,\"data\":{");
        json.Should().Contain("\"context\":81920").And.Contain("\"token_budget\":5000000000");
        json.Should().Contain("\"lr\":2.0e-5").And.Contain("\"precision\":\"bf16\"");
        json.Should().Contain("\"CommonCrawl\":0.53374772");
        json.Should().NotContain("description").And.NotContain("gitops").And.NotContain("hash-test");
        CanonicalForm.Hash(Load(Reference)).Should().MatchRegex("^[0-9a-f]{64}$");
    }

    [Fact]
    public void Optional_fields_left_unset_are_absent_so_new_optional_fields_keep_old_hashes()
    {
        var json = CanonicalForm.ToJson(Load(Reference));
        json.Should().NotContain("null", "an unset optional field (data.paths, domain_loss.paths, ...) is left out, not written as null");

        var withHeldOut = Load(Reference.Replace("training:\n", "evaluation: { domain_loss: { paths: [validation.jsonl] } }\ntraining:\n", StringComparison.Ordinal));
        CanonicalForm.ToJson(withHeldOut).Should().Contain("\"paths\":[\"validation.jsonl\"]");
        CanonicalForm.Hash(withHeldOut).Should().NotBe(CanonicalForm.Hash(Load(Reference)), "a field that is set is part of the identity");
    }
}

/// <summary>Fields added after hashes were published: the default leaves every existing hash as it was.</summary>
public sealed class LaterFieldHashTests
{
    private const string Base = """
        name: hash-test
        model: { base: llama-2-7b }
        data: { token_budget: 5B, context: 80K }
        """;

    private static string HashOf(string yaml) =>
        CanonicalForm.Hash(ExperimentLoader.LoadText("x.yaml", yaml, new LoadOptions(PolicyMode.Off)).Require());

    [Fact]
    public void Budget_rule_exact_is_the_default_and_leaves_the_hash_unchanged_while_paper_changes_it()
    {
        var withExact = Base.Replace("context: 80K }", "context: 80K, budget_rule: exact }", StringComparison.Ordinal);
        var withPaper = Base.Replace("context: 80K }", "context: 80K, budget_rule: paper }", StringComparison.Ordinal);
        HashOf(withExact).Should().Be(HashOf(Base));
        HashOf(withPaper).Should().NotBe(HashOf(Base));
        CanonicalForm.ToJson(ExperimentLoader.LoadText("x.yaml", withPaper, new LoadOptions(PolicyMode.Off)).Require())
            .Should().Contain("\"budget_rule\":\"paper\"");
        CanonicalForm.ToParameterJson(ExperimentLoader.LoadText("x.yaml", withExact, new LoadOptions(PolicyMode.Off)).Require())
            .Should().NotContain("budget_rule", "steps that bind the data section keep their cache keys");
    }

    [Fact]
    public void Rope_reset_length_enters_the_hash_only_when_set()
    {
        var set = Base + "\nevaluation: { needle: { rope_reset_length: 80K } }\n";
        HashOf(set).Should().NotBe(HashOf(Base));
        var spec = ExperimentLoader.LoadText("x.yaml", set, new LoadOptions(PolicyMode.Off)).Require();
        spec.Evaluation.Needle.RopeResetLength.Should().Be(81920);
        CanonicalForm.ToParameterJson(ExperimentLoader.LoadText("x.yaml", Base, new LoadOptions(PolicyMode.Off)).Require())
            .Should().NotContain("rope_reset_length", "the needle step's cache key of existing experiments stays put");
    }
}
