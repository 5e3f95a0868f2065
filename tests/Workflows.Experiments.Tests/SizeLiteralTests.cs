using Workflows.Experiments.Spec;

namespace Workflows.Experiments.Tests;

public sealed class SizeLiteralTests
{
    [Theory]
    [InlineData("80K", SizeBase.Binary, 81_920)]
    [InlineData("64K", SizeBase.Binary, 65_536)]
    [InlineData("128K", SizeBase.Binary, 131_072)]
    [InlineData("1.5K", SizeBase.Binary, 1_536)]
    [InlineData("1M", SizeBase.Binary, 1_048_576)]
    [InlineData("5B", SizeBase.Decimal, 5_000_000_000)]
    [InlineData("0.5B", SizeBase.Decimal, 500_000_000)]
    [InlineData("500M", SizeBase.Decimal, 500_000_000)]
    [InlineData("4M", SizeBase.Decimal, 4_000_000)]
    [InlineData("128K", SizeBase.Decimal, 128_000)]
    [InlineData("10b", SizeBase.Decimal, 10_000_000_000)]
    [InlineData("4_000_000", SizeBase.Decimal, 4_000_000)]
    [InlineData("81920", SizeBase.Binary, 81_920)]
    public void Parses_exactly(string text, SizeBase sizeBase, long expected)
    {
        SizeLiteral.TryParse(text, sizeBase, out var value, out var error).Should().BeTrue(error);
        value.Should().Be(expected);
    }

    [Theory]
    [InlineData("")]
    [InlineData("K")]
    [InlineData("5X")]
    [InlineData("1.0001K")]
    [InlineData("-5")]
    [InlineData("99999999999T")]
    public void Refuses(string text) => SizeLiteral.TryParse(text, SizeBase.Decimal, out _, out var error).Should().BeFalse(error);

    [Theory]
    [InlineData(81_920, SizeBase.Binary, "80K")]
    [InlineData(5_000_000_000, SizeBase.Decimal, "5B")]
    [InlineData(1_536, SizeBase.Binary, "1536")]
    [InlineData(131_072, SizeBase.Binary, "128K")]
    public void Formats_shortest_exact_literal(long value, SizeBase sizeBase, string expected) =>
        SizeLiteral.Format(value, sizeBase).Should().Be(expected);
}
