using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Tests;

public sealed class UntrustedTests
{
    [Theory]
    [InlineData("plain text, é and 中文", "plain text, é and 中文")]
    [InlineData("a\nb\r\tc", "a\\nb\\r\\tc")]
    [InlineData("\u001b[31mred\u0007", "\\e[31mred\\x07")]
    [InlineData("\u009b31m", "\\x9b31m")]
    [InlineData("abc\u202egpj.exe", "abc\\u202egpj.exe")]
    [InlineData("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff")]
    [InlineData("line\u2028sep", "line\\u2028sep")]
    [InlineData("emoji 😀 stays", "emoji 😀 stays")]
    [InlineData("\\e is a backslash and an e", "\\e is a backslash and an e")]
    public void Escape_shows_every_unsafe_character_and_keeps_the_rest(string text, string expected) =>
        Untrusted.Escape(text).Should().Be(expected);

    [Fact]
    public void A_lone_surrogate_half_is_escaped() =>
        Untrusted.Escape("lone " + (char)0xD800 + " half").Should().Be("lone \\ud800 half");

    [Fact]
    public void Escape_is_idempotent_so_messages_can_be_escaped_again_where_they_are_printed()
    {
        var once = Untrusted.Escape("x\u001b\n\u202e");

        Untrusted.Escape(once).Should().Be(once);
        Untrusted.HasUnsafeCharacters(once).Should().BeFalse();
    }

    [Fact]
    public void Quote_cuts_long_text_to_an_excerpt_and_says_how_long_it_was()
    {
        Untrusted.Quote("short").Should().Be("'short'");
        Untrusted.Quote(new string('k', 3000)).Should().Be($"'{new string('k', 64)}…' (3,000 characters)");
        Untrusted.Quote(new string('k', 63) + "😀" + "tail").Should().Be($"'{new string('k', 63)}…' (69 characters)", "a surrogate pair is never split");
    }
}
