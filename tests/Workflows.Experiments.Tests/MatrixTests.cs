using Workflows.Experiments.Matrix;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class MatrixTests
{
    private static readonly LoadOptions NoPolicy = new(PolicyMode.Off);

    /// <summary>A small sweep: a list axis, a labelled axis, one exclude. Lines matter: tests check error positions.</summary>
    private const string Sweep = """
        name: lr-sweep
        model: { base: tiny }
        data:
          token_budget: 1M
          context: 1K
          upsampling:
            short_keep_ratio: 0.1
        training:
          lr: 1.0e-3
        matrix:
          data.upsampling.mode: [per-source, global]
          training.lr: { low: 1.0e-4, high: 1.0e-3 }
          exclude:
            - { data.upsampling.mode: global, training.lr: high }
        """;

    private static SweepLoadResult Load(string yaml, string file = "lr-sweep.yaml", LoadOptions? options = null) =>
        SweepLoader.LoadText(file, yaml, options ?? NoPolicy);

    private static IReadOnlyDictionary<string, string> HashesByName(SweepLoadResult r) =>
        r.Require().ToDictionary(v => v.Name, v => v.ContentHash);

    [Fact]
    public void Expands_every_combination_minus_the_excluded_with_stable_names_and_own_hashes()
    {
        var result = Load(Sweep);

        result.Diagnostics.Should().BeEmpty();
        result.IsMatrix.Should().BeTrue();
        result.Variants.Select(v => v.Name).Should().Equal("lr-sweep-per-source-low", "lr-sweep-per-source-high", "lr-sweep-global-low");
        result.Variants.Select(v => v.Index).Should().Equal(1, 2, 3);
        result.Variants.Select(v => v.ContentHash).Should().OnlyHaveUniqueItems();
        var high = result.Variant("lr-sweep-per-source-high")!;
        high.Spec.Name.Should().Be("lr-sweep-per-source-high");
        high.Spec.Training.Lr.Should().Be(1.0e-3);
        high.Spec.Data.Upsampling.Mode.Should().Be(UpsamplingMode.PerSource);
        high.Describe().Should().Be("data.upsampling.mode = per-source, training.lr = high");
        result.Variant("lr-sweep-global-low")!.Spec.Training.Lr.Should().Be(1.0e-4);

        // Each variant is exactly the experiment its standalone file would be: the hash ignores only the name.
        var standalone = ExperimentLoader.LoadText("lr-sweep-global-low.yaml", """
            name: lr-sweep-global-low
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K, upsampling: { mode: global, short_keep_ratio: 0.1 } }
            training: { lr: 1.0e-4 }
            """, NoPolicy).Require();
        result.Variant("lr-sweep-global-low")!.ContentHash.Should().Be(CanonicalForm.Hash(standalone));
    }

    [Fact]
    public void Names_and_hashes_do_not_depend_on_key_order_or_formatting()
    {
        var reordered = """
            # the same sweep, keys and axes reordered, flow/block swapped, sizes spelled out
            matrix:
              exclude:
                - training.lr: high
                  data.upsampling.mode: global
              training.lr:
                high: 0.001
                low: 1e-4
              data.upsampling.mode:
                - per-source
                - global
            training: { lr: 0.001 }
            data: { upsampling: { short_keep_ratio: 1e-1 }, context: 1024, token_budget: 1000000 }
            model:
              base: "tiny"
            name: lr-sweep
            """;

        HashesByName(Load(reordered)).Should().Equal(HashesByName(Load(Sweep)));
    }

    [Fact]
    public void Each_variant_yaml_reloads_to_the_same_experiment()
    {
        foreach (var file in new[] { "smoke-sweep.yaml", "paper-table3.yaml" })
        {
            var sweep = SweepLoader.LoadFile(Path.Combine(RepoPaths.Experiments, file));
            sweep.Diagnostics.Should().BeEmpty(file);
            foreach (var v in sweep.Variants)
            {
                var reloaded = ExperimentLoader.LoadText($"runs/x/{v.Name}.yaml", v.Yaml, NoPolicy);
                reloaded.Diagnostics.Should().BeEmpty(v.Yaml);
                reloaded.Spec!.Name.Should().Be(v.Name);
                CanonicalForm.Hash(reloaded.Spec).Should().Be(v.ContentHash, v.Yaml);
                CanonicalForm.ToParameterJson(reloaded.Spec).Should().Be(CanonicalForm.ToParameterJson(v.Spec), "cosmetic fields survive too");
                v.Yaml.Should().StartWith($"# Variant {v.Index} of {sweep.Variants.Count} of the sweep").And.NotContain("matrix:");
            }
        }
    }

    [Fact]
    public void The_paper_table_is_the_six_single_files()
    {
        var sweep = SweepLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "paper-table3.yaml"));

        sweep.Diagnostics.Should().BeEmpty();
        sweep.Name.Should().Be("paper-table3");
        sweep.Variants.Select(v => v.Name).Should().Equal(
            "original-5b-80k", "per-source-5b-80k", "global-5b-80k", "code-up-5b-80k", "book-up-5b-80k", "arxiv-up-5b-80k");
        foreach (var v in sweep.Variants)
        {
            var single = ExperimentLoader.LoadFile(Path.Combine(RepoPaths.Experiments, v.Name + ".yaml")).Require();
            v.ContentHash.Should().Be(CanonicalForm.Hash(single), $"{v.Name} is the same experiment as experiments/{v.Name}.yaml");
        }
    }

    [Fact]
    public void The_smoke_sweep_has_three_variants_that_share_the_input_and_pairwise_the_prepared_data()
    {
        var sweep = SweepLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "smoke-sweep.yaml"));

        sweep.Diagnostics.Should().BeEmpty();
        sweep.Variants.Select(v => v.Name).Should().Equal("smoke-sweep-none-lr-low", "smoke-sweep-per-source-lr-low", "smoke-sweep-per-source-lr-high");
        sweep.Variants.Select(v => v.Spec.Data.Paths![0]).Distinct().Should().ContainSingle();
        sweep.Variants[1].Spec.Data.Should().BeEquivalentTo(sweep.Variants[2].Spec.Data, "the two learning rates train on the same prepared data");
        sweep.Variants[1].Spec.Training.Lr.Should().NotBe(sweep.Variants[2].Spec.Training.Lr);
    }

    [Fact]
    public void Include_adds_variants_and_takes_labels_of_labelled_axes()
    {
        var result = Load(Sweep.Replace(
            "    - { data.upsampling.mode: global, training.lr: high }",
            "    - { data.upsampling.mode: global, training.lr: high }\n  include:\n    - { data.upsampling.mode: per-source, training.lr: high, training.warmup_steps: 10 }\n    - { training.lr: 3.0e-3 }",
            StringComparison.Ordinal));

        result.Diagnostics.Should().BeEmpty();
        result.Variants.Select(v => v.Name).Should().Equal(
            "lr-sweep-per-source-low", "lr-sweep-per-source-high", "lr-sweep-global-low",
            "lr-sweep-per-source-high-10", "lr-sweep-3p0e-3");
        var extra = result.Variant("lr-sweep-per-source-high-10")!.Spec;
        extra.Training.Lr.Should().Be(1.0e-3);
        extra.Training.WarmupSteps.Should().Be(10);
        result.Variant("lr-sweep-3p0e-3")!.Spec.Data.Upsampling.Mode.Should().Be(UpsamplingMode.PerSource, "the base file's default");
    }

    [Fact]
    public void A_name_template_names_the_variants()
    {
        var result = Load(Sweep.Replace("matrix:\n", "matrix:\n  name: \"{training.lr}-{data.upsampling.mode}-x\"\n", StringComparison.Ordinal));

        result.Diagnostics.Should().BeEmpty();
        result.Variants.Select(v => v.Name).Should().Equal("low-per-source-x", "high-per-source-x", "low-global-x");
    }

    [Fact]
    public void An_error_inside_an_axis_value_is_reported_there_once_for_the_variants_it_makes()
    {
        var result = Load(Sweep.Replace("[per-source, global]", "[per-source, global, sideways]", StringComparison.Ordinal));

        var error = result.Diagnostics.Should().ContainSingle().Which;
        error.Code.Should().Be(DiagnosticCode.InvalidValue);
        (error.Location.Line, error.Location.Column).Should().Be((11, 46), "the position of 'sideways' in the axis");
        error.Message.Should().Be("in variants 'lr-sweep-sideways-low', 'lr-sweep-sideways-high': 'sideways' is not a valid data.upsampling.mode");
        result.IsValid.Should().BeFalse();
        result.Variants.Should().BeEmpty("an invalid sweep submits nothing");
    }

    [Fact]
    public void A_conflict_caused_by_an_axis_value_is_moved_to_that_value()
    {
        // mode 'none' keeps every document, so the base's short_keep_ratio (line 7) contradicts it in that variant.
        var result = Load(Sweep.Replace("[per-source, global]", "[per-source, none]", StringComparison.Ordinal)
            .Replace("{ data.upsampling.mode: global, training.lr: high }", "{ data.upsampling.mode: none, training.lr: low }", StringComparison.Ordinal));

        var error = result.Diagnostics.Should().ContainSingle().Which;
        error.Path.Should().Be("data.upsampling.short_keep_ratio");
        (error.Location.Line, error.Location.Column).Should().Be((11, 38), "at the axis value 'none'");
        error.Message.Should().StartWith("in variant 'lr-sweep-none-high' (data.upsampling.mode = none, training.lr = high): 'short_keep_ratio' has no effect in mode 'none'");
        error.Hint.Should().EndWith("the setting it conflicts with is at line 7:23");
    }

    [Fact]
    public void An_error_shared_by_several_variants_names_them_all_and_a_base_error_is_reported_once()
    {
        var result = Load("""
            name: lr-sweep
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K, mix: { Book: 0.5, Github: 0.4 }, upsampling: { short_keep_ratio: 0.1 } }
            matrix:
              data.upsampling.mode: [per-source, none]
              training.lr: { low: 1.0e-4, high: 1.0e-3 }
            """);

        result.Diagnostics.Should().HaveCount(2);
        result.Diagnostics[0].Code.Should().Be(DiagnosticCode.WeightsDoNotSumToOne, "the base's own error, once, not once per variant");
        result.Diagnostics[0].Location.Line.Should().Be(3);
        result.Diagnostics[1].Message.Should().StartWith("in variants 'lr-sweep-none-low', 'lr-sweep-none-high': 'short_keep_ratio' has no effect");
        result.Diagnostics[1].Location.Line.Should().Be(5);
    }

    [Fact]
    public void Policy_applies_to_each_variant_at_the_value_that_breaks_it()
    {
        var yaml = """
            name: budgets
            model: { base: llama-2-7b }
            data: { token_budget: 5B, context: 80K }
            matrix:
              data.token_budget: [100M, 1B, 5B]
            """;

        var result = SweepLoader.LoadText(Path.Combine("experiments", "budgets.yaml"), yaml, new LoadOptions(PolicyMode.Auto));

        var error = result.Diagnostics.Should().ContainSingle().Which;
        error.Code.Should().Be(DiagnosticCode.PolicyViolation);
        (error.Location.Line, error.Location.Column).Should().Be((5, 23), "at '100M'");
        error.Message.Should().StartWith("in variant 'budgets-100m' (data.token_budget = 100m)");
    }

    [Theory]
    [InlineData("  data.upsampling.mdoe: [none]", 13, DiagnosticCode.UnknownKey, "did you mean 'data.upsampling.mode'?")]
    [InlineData("  data.mix.Book: [0.5]", 13, DiagnosticCode.UnknownKey, "vary 'data.mix' as a whole")]
    [InlineData("  data.upsampling: { a: { mode: none } }", 13, DiagnosticCode.InvalidValue, "vary a section or a value inside it, not both")]
    [InlineData("  training.batch_tokens: []", 13, DiagnosticCode.WrongType, "write [a, b] for plain values, or { label-a: value, label-b: value } to name each value")]
    [InlineData("  training.batch_tokens: [{ a: 1 }]", 13, DiagnosticCode.WrongType, "write the axis as a mapping of label to value, e.g. training.batch_tokens: { first: ..., second: ... }")]
    [InlineData("  training.batch_tokens: { Big: 8K }", 13, DiagnosticCode.InvalidValue, "e.g. 'big'")]
    [InlineData("  data.context: [1K, 1K]", 13, DiagnosticCode.DuplicateKey, "list each value once")]
    public void Malformed_axes_are_located(string axis, int line, DiagnosticCode code, string hint)
    {
        var result = Load(Sweep.Replace("  exclude:", axis + "\n  exclude:", StringComparison.Ordinal));

        var error = result.Diagnostics.Should().ContainSingle().Which;
        error.Code.Should().Be(code);
        error.Location.Line.Should().Be(line);
        error.Hint.Should().Be(hint);
    }

    [Fact]
    public void Exclude_entries_must_name_axes_and_their_values()
    {
        var result = Load(Sweep.Replace(
            "    - { data.upsampling.mode: global, training.lr: high }",
            "    - { data.upsampling.mode: glob, training.lr: high }\n    - { training.warmup_steps: 3 }",
            StringComparison.Ordinal));

        result.Diagnostics.Select(d => (d.Location.Line, d.Message)).Should().Equal(
            (14, "excludes nothing: 'glob' is not a value of axis 'data.upsampling.mode'"),
            (15, "exclude names 'training.warmup_steps', which is not an axis of the matrix"));
        result.Diagnostics[0].Hint.Should().Be("values: per-source, global");
    }

    [Fact]
    public void Too_many_variants_are_refused_with_the_count_and_the_limit()
    {
        var result = Load("""
            name: big
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K }
            matrix:
              training.lr: [1e-5, 2e-5, 3e-5, 4e-5, 5e-5, 6e-5, 7e-5, 8e-5, 9e-5]
              training.warmup_steps: [0, 1, 2, 3, 4, 5, 6, 7, 8]
            """);

        var error = result.Diagnostics.Should().ContainSingle().Which;
        error.Code.Should().Be(DiagnosticCode.OutOfRange);
        error.Location.Line.Should().Be(4);
        error.Message.Should().Be("the matrix expands to 81 variants (training.lr: 9 × training.warmup_steps: 9); a sweep file may have at most 64 (each variant is a full training run)");
        error.Hint.Should().Be("remove values, exclude combinations, or split the sweep into several files");
    }

    [Fact]
    public void Colliding_names_and_identical_variants_are_refused()
    {
        var collide = Load("""
            name: lr-sweep
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K }
            matrix:
              training.lr: [1e-3, 1E-3]
            """);
        collide.Diagnostics.Should().ContainSingle().Which.Message.Should().Be(
            "two variants would be named 'lr-sweep-1e-3': training.lr = 1e-3 and training.lr = 1e-3");

        var identical = Load("""
            name: lr-sweep
            model: { base: tiny }
            data: { token_budget: 1M, context: 1K }
            matrix:
              training.lr: { low: 1.0e-4, same: 0.0001 }
            """);
        identical.Diagnostics.Should().ContainSingle().Which.Message.Should()
            .StartWith("variants 'lr-sweep-low' and 'lr-sweep-same' are the same experiment");
    }

    [Fact]
    public void A_derived_name_must_be_a_valid_experiment_name()
    {
        var result = Load(Sweep.Replace("{ low: 1.0e-4, high: 1.0e-3 }", "{ a-very-long-label-that-makes-the-name-too-long-for-a-blob-prefix: 1.0e-4, high: 1.0e-3 }", StringComparison.Ordinal));

        var error = result.Diagnostics.Should().ContainSingle("both variants with the label get the one error, at the label").Which;
        (error.Location.Line, error.Location.Column).Should().Be((12, 18));
        error.Message.Should().StartWith("variant name 'lr-sweep-per-source-a-very-long-label");
        error.Hint.Should().Be("use shorter labels, or a shorter matrix.name template");
    }

    [Fact]
    public void A_command_that_takes_one_experiment_says_the_file_is_a_sweep()
    {
        var loaded = ExperimentLoader.LoadText("lr-sweep.yaml", Sweep, NoPolicy);

        var error = loaded.Diagnostics.Should().ContainSingle().Which;
        error.Location.Line.Should().Be(10);
        error.Message.Should().Be("this file is a sweep: 'matrix' expands it into several experiments, and this command takes one");
    }

    [Fact]
    public void A_plain_file_is_one_variant()
    {
        var single = SweepLoader.LoadFile(Path.Combine(RepoPaths.Experiments, "smoke.yaml"));

        single.IsMatrix.Should().BeFalse();
        single.Variants.Should().ContainSingle().Which.Name.Should().Be("smoke");
        single.Variants[0].Yaml.Should().Be(File.ReadAllText(Path.Combine(RepoPaths.Experiments, "smoke.yaml")));
    }
}
