using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Workflows.Cli.Commands;
using ZstdSharp;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// The hostile-input suite (issue 15): experiment files as an attacker would write them in a pull request, run through
/// wf as the plan job runs it. Every case asserts the exit code, a message located at file:line:column, no raw control
/// or bidi character in the output, nothing of the file the experiment points at in the output, and an end within
/// seconds. The "secret" is a file outside the repository holding a 3 KB token, as a runner's service-account token would.
/// Keep adding cases here as new ones are found.
/// </summary>
public sealed partial class HostileInputTests : IDisposable
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(10);

    private readonly string root = Directory.CreateTempSubdirectory("wf-hostile-").FullName;
    private readonly string repo;
    private readonly string outside;
    private readonly string secretFile;
    private readonly string marker = "WFSECRET" + Guid.NewGuid().ToString("N")[..12];

    public HostileInputTests()
    {
        repo = Path.Combine(root, "repo");
        outside = Path.Combine(root, "outside");
        Directory.CreateDirectory(Path.Combine(repo, ".git")); // a git working tree, as the runner's checkout
        Directory.CreateDirectory(Path.Combine(repo, "experiments"));
        Directory.CreateDirectory(Path.Combine(repo, "data"));
        Directory.CreateDirectory(outside);
        secretFile = Path.Combine(outside, "token");
        File.WriteAllText(secretFile, string.Concat(Enumerable.Repeat(marker, 3 * 1024 / marker.Length)));
    }

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string Experiment(string name, string extra, string model = "base: tiny")
    {
        var path = Path.Combine(repo, "experiments", name + ".yaml");
        File.WriteAllText(path, $"""
            name: {name}
            profile: smoke
            model: {"{"} {model} {"}"}
            data:
              token_budget: 16K
              context: 256
              tokenizer: gpt2
            {extra}
            """);
        return path;
    }

    private static void Fifo(string path)
    {
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        mkfifo.WaitForExit();
        mkfifo.ExitCode.Should().Be(0, "mkfifo creates the named pipe");
    }

    [GeneratedRegex(@"(?m)^\S+:\d+:\d+: error \w+: ")]
    private static partial Regex Located();

    /// <summary>Control characters (but newline), DEL, C1 controls, and format characters (bidi, zero-width).</summary>
    private static bool IsUnsafe(char c) =>
        (c < 0x20 && c != '\n') || c == 0x7F || (c >= 0x80 && c <= 0x9F)
        || System.Globalization.CharUnicodeInfo.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator;

    private (int Exit, string Out, string Err) Run(params string[] args)
    {
        var watch = Stopwatch.StartNew();
        var result = Wf(args);
        watch.Elapsed.Should().BeLessThan(Quick, $"wf {string.Join(' ', args)} must not hang or spin");
        var all = result.Out + result.Err;
        all.Where(IsUnsafe).Select(c => $"U+{(int)c:X4}").Should().BeEmpty("no raw control, bidi or zero-width character reaches the terminal or the log");
        all.Split('\n').Should().NotContain(l => l.TrimStart().StartsWith("::", StringComparison.Ordinal), "no line can be read as a workflow command");
        all.Should().NotContain(marker[..12], "nothing of the file the experiment points at is printed");
        return result;
    }

    /// <summary>validate and plan --markdown (what the plan job runs) both refuse, with a located message naming the key.</summary>
    private void Refused(string experiment, string expected)
    {
        foreach (var args in new[] { new[] { "validate", experiment }, ["plan", "--markdown", experiment] })
        {
            var result = Run(args);
            result.Exit.Should().Be(ExitCodes.InvalidInput, $"wf {args[0]}: {result.Out}{result.Err}");
            Located().IsMatch(result.Out).Should().BeTrue($"a file:line:column message, got:\n{result.Out}");
            result.Out.Should().Contain(expected);
        }
    }

    [Fact]
    public void A_symlinked_experiment_file_is_refused_without_reading_its_target()
    {
        var link = Path.Combine(repo, "experiments", "x.yaml");
        File.CreateSymbolicLink(link, secretFile);

        Refused(link, "is a symbolic link");
    }

    [Fact]
    public void An_experiment_reached_through_a_linked_folder_is_refused()
    {
        var real = Path.Combine(outside, "real");
        Directory.CreateDirectory(real);
        File.WriteAllText(Path.Combine(real, "y.yaml"), $"name: y\n{marker}: 1\n");
        Directory.CreateSymbolicLink(Path.Combine(repo, "experiments", "linked"), real);

        Refused(Path.Combine(repo, "experiments", "linked", "y.yaml"), "is reached through a symbolically linked folder");
    }

    [Fact]
    public void Validating_a_folder_does_not_follow_links_out_of_it_or_around_in_a_loop()
    {
        Experiment("fine", "");
        Directory.CreateSymbolicLink(Path.Combine(repo, "experiments", "loop"), Path.Combine(repo, "experiments"));
        Directory.CreateSymbolicLink(Path.Combine(repo, "experiments", "elsewhere"), outside);
        File.WriteAllText(Path.Combine(outside, "z.yaml"), $"name: z\n{marker}: 1\n");

        var result = Run("validate", Path.Combine(repo, "experiments"));

        result.Exit.Should().Be(ExitCodes.Ok, result.Out);
        result.Out.Should().Contain("1 file(s): 1 valid");
    }

    [Theory]
    [InlineData("  paths: [../../outside/token]", "data.paths[0] '../../outside/token' is outside the repository")]
    [InlineData("  paths: [SECRET]", "is outside the repository")]
    [InlineData("  paths: [OUTSIDE]", "is outside the repository")]
    [InlineData("  paths: [/]", "data.paths[0] '/' is outside the repository")]
    [InlineData("  paths: [/proc/self/environ]", "a path under /proc, a virtual or device file system")]
    [InlineData("evaluation: { domain_loss: { paths: [SECRET] } }", "evaluation.domain_loss.paths[0]")]
    [InlineData("evaluation: { needle: { haystack: OUTSIDE } }", "evaluation.needle.haystack")]
    public void Paths_outside_the_repository_are_refused_at_their_key(string line, string expected)
    {
        var experiment = Experiment("escape", line.Replace("SECRET", secretFile, StringComparison.Ordinal).Replace("OUTSIDE", outside, StringComparison.Ordinal));

        Refused(experiment, expected.Replace("SECRET", secretFile, StringComparison.Ordinal));
    }

    [Fact]
    public void A_data_file_linked_to_a_file_outside_is_refused_without_a_byte_of_it()
    {
        File.CreateSymbolicLink(Path.Combine(repo, "data", "pw.jsonl"), secretFile);

        Refused(Experiment("linked", "  paths: [../data/pw.jsonl]"), "resolves (through a symbolic link) to a place outside the repository");
    }

    [Fact]
    public void A_folder_of_data_holding_a_link_out_is_refused()
    {
        Directory.CreateDirectory(Path.Combine(repo, "data", "corpus"));
        File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), Path.Combine(repo, "data", "corpus", "a.jsonl.zst"));
        File.CreateSymbolicLink(Path.Combine(repo, "data", "corpus", "b.jsonl"), secretFile);

        Refused(Experiment("folder", "  paths: [../data/corpus]"), "holds an entry that may not be read");
    }

    [Fact]
    public void A_fifo_named_jsonl_is_refused_at_once_by_validate_plan_and_prep()
    {
        Fifo(Path.Combine(repo, "data", "pipe.jsonl"));
        var experiment = Experiment("fifo", "  paths: [../data/pipe.jsonl]");

        Refused(experiment, "is a FIFO (named pipe)");
        var prep = Run("prep", experiment, "--out", Path.Combine(root, "prep"), "--threads", "1");
        prep.Exit.Should().Be(ExitCodes.InvalidInput);
        prep.Out.Should().Contain("is a FIFO (named pipe)");
    }

    [Fact]
    public void A_link_to_a_device_is_refused()
    {
        File.CreateSymbolicLink(Path.Combine(repo, "data", "zero.jsonl"), "/dev/zero");

        Refused(Experiment("zero", "  paths: [../data/zero.jsonl]"), "resolves (through a symbolic link) to a path under /dev");
    }

    [Fact]
    public void A_model_base_outside_the_repository_is_refused()
    {
        Refused(Experiment("model", "", $"base: {outside}"), "model.base");
    }

    [Fact]
    public void A_model_base_folder_needs_a_config_json_that_parses()
    {
        Directory.CreateDirectory(Path.Combine(repo, "models", "empty"));
        Directory.CreateDirectory(Path.Combine(repo, "models", "broken"));
        File.WriteAllText(Path.Combine(repo, "models", "broken", "config.json"), marker + "{ not json");

        Refused(Experiment("empty-model", "", "base: ../models/empty"), "has no config.json: it is not a HuggingFace model folder");
        Refused(Experiment("broken-model", "", "base: ../models/broken"), "has a config.json that is not valid JSON (line 1, byte 1)");
    }

    [Fact]
    public void A_binary_tokenizer_model_is_refused_at_validate()
    {
        var bytes = new byte[4096];
        new Random(15).NextBytes(bytes);
        bytes[0] = 0xFF;
        Encoding.ASCII.GetBytes(marker).CopyTo(bytes, 100);
        File.WriteAllBytes(Path.Combine(repo, "data", "tokenizer.model"), bytes);
        var experiment = Experiment("tok", "").Replace("tok.yaml", "tok.yaml", StringComparison.Ordinal);
        File.WriteAllText(experiment, File.ReadAllText(experiment).Replace("tokenizer: gpt2", "tokenizer: ../data/tokenizer.model", StringComparison.Ordinal));

        Refused(experiment, "data.tokenizer '../data/tokenizer.model' is not a SentencePiece model");
    }

    [Theory]
    [InlineData("name: \"x\\e[31mred\\a\"", "'x\\e[31mred\\x07' is not a valid name")]
    [InlineData("name: \"abc\\u202Egpj.exe\"", "'abc\\u202egpj.exe' is not a valid name")]
    [InlineData("name: \"x\\n::error::forged\"", "'x\\n::error::forged' is not a valid name")]
    [InlineData("name: \"x\\r\\n::add-mask::y\"", "'x\\r\\n::add-mask::y'")]
    [InlineData("\"\\e]0;title\\a\": 1", "unknown key '\\e]0;title\\x07'")]
    public void Control_and_bidi_characters_are_shown_as_escapes(string line, string expected)
    {
        var path = Path.Combine(repo, "experiments", "esc.yaml");
        File.WriteAllText(path, $"{line}\nmodel: {{ base: tiny }}\ndata: {{ token_budget: 16K, context: 256 }}\n");

        Refused(path, expected);
    }

    [Fact]
    public void A_long_value_is_quoted_as_a_short_excerpt()
    {
        var path = Path.Combine(repo, "experiments", "long.yaml");
        File.WriteAllText(path, $"name: {new string('q', 3000)}\nmodel: {{ base: tiny }}\ndata: {{ token_budget: 16K, context: 256 }}\n");

        var result = Run("validate", path);

        result.Exit.Should().Be(ExitCodes.InvalidInput);
        result.Out.Should().Contain($"'{new string('q', 64)}…' (3,000 characters) is not a valid name");
        result.Out.Length.Should().BeLessThan(1000);
    }

    [Theory]
    [InlineData("name: x\nmodel: { base: tiny\ndata: {token_budget: 1M}\n", ":2:8: error YamlSyntax: YAML syntax error: the flow mapping '{' opened here is not closed")]
    [InlineData("name: x\nmodel: [tiny\ndata: 1\n", ":2:8: error YamlSyntax: YAML syntax error: the flow sequence '[' opened here is not closed")]
    public void An_unclosed_flow_collection_is_located_where_it_opens(string yaml, string expected)
    {
        var path = Path.Combine(repo, "experiments", "flow.yaml");
        File.WriteAllText(path, yaml);

        Refused(path, expected);
    }

    /// <summary>
    /// Concatenated zstd frames of one repeated block: small on disk, huge decompressed. With <paramref name="lineBytes"/>,
    /// the block is lines of that many spaces (blank lines), else one line of <paramref name="fill"/>.
    /// </summary>
    private static string Bomb(string path, byte fill, int blockMiB, int blocks, int lineBytes = 0)
    {
        var block = new byte[blockMiB << 20];
        Array.Fill(block, fill);
        for (var i = lineBytes - 1; lineBytes > 0 && i < block.Length; i += lineBytes)
        {
            block[i] = (byte)'\n';
        }

        using var compressor = new Compressor(1);
        var frame = compressor.Wrap(block).ToArray();
        using var file = File.Create(path);
        for (var i = 0; i < blocks; i++)
        {
            file.Write(frame);
        }

        return path;
    }

    [Fact]
    public void A_zstd_bomb_of_one_4_GiB_line_is_refused_at_the_document_limit()
    {
        var bomb = Bomb(Path.Combine(repo, "data", "bomb.jsonl.zst"), (byte)'a', 16, 256);
        new FileInfo(bomb).Length.Should().BeLessThan(1 << 20, "4 GiB decompressed from well under a megabyte");

        var result = Run("prep", Experiment("bomb", "  paths: [../data/bomb.jsonl.zst]"), "--out", Path.Combine(root, "prep"), "--threads", "1");

        result.Exit.Should().Be(ExitCodes.InvalidInput, result.Out + result.Err);
        (result.Out + result.Err).Should().Contain("document at bomb.jsonl.zst:1 exceeds 64 MiB").And.Contain("WF_MAX_DOCUMENT_MIB raises it")
            .And.NotContain("minimumLength");
    }

    [Fact]
    public void A_zstd_bomb_of_empty_lines_is_refused_by_its_compression_ratio()
    {
        // Blank lines of 1 MiB: no line is over the limit, no record is bad, only the ratio gives it away.
        var bomb = Bomb(Path.Combine(repo, "data", "lines.jsonl.zst"), (byte)' ', 16, 64, lineBytes: 1 << 20);

        var result = Run("prep", Experiment("lines", "  paths: [../data/lines.jsonl.zst]"), "--out", Path.Combine(root, "prep"), "--threads", "1");

        result.Exit.Should().Be(ExitCodes.InvalidInput, result.Out + result.Err);
        (result.Out + result.Err).Should().Contain("decompresses to more than 1000x its compressed size").And.Contain("a compression bomb");
    }
}
