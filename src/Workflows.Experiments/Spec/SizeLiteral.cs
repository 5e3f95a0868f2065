using System.Globalization;
using Workflows.Experiments.Validation;

namespace Workflows.Experiments.Spec;

/// <summary>
/// Sizes as people write them. Token counts are decimal (<c>5B</c> = 5,000,000,000; <c>4M</c> = 4,000,000), the way
/// the paper counts training tokens; sequence lengths are binary (<c>80K</c> = 81,920; <c>64K</c> = 65,536), the
/// way the paper's code sets its context (<c>reset_rope(model, 81920)</c>). Each field of the spec says which base
/// it uses. A fraction is allowed when the result is a whole number (<c>0.5B</c>, <c>1.5K</c> binary = 1,536).
/// </summary>
public static class SizeLiteral
{
    private static readonly (char Suffix, long Decimal, long Binary)[] Suffixes =
    [
        ('K', 1_000, 1L << 10),
        ('M', 1_000_000, 1L << 20),
        ('B', 1_000_000_000, 1L << 30),
        ('G', 1_000_000_000, 1L << 30),
        ('T', 1_000_000_000_000, 1L << 40),
    ];

    public static bool TryParse(string text, SizeBase sizeBase, out long value, out string? error)
    {
        value = 0;
        error = null;
        var s = text.Trim().Replace("_", "", StringComparison.Ordinal);
        if (s.Length == 0)
        {
            error = "empty size";
            return false;
        }

        long multiplier = 1;
        var last = char.ToUpperInvariant(s[^1]);
        foreach (var (suffix, dec, bin) in Suffixes)
        {
            if (last == suffix)
            {
                multiplier = sizeBase == SizeBase.Decimal ? dec : bin;
                s = s[..^1];
                break;
            }
        }

        if (!decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            error = $"{Untrusted.Quote(text)} is not a size: expected digits with an optional suffix K, M, B or T";
            return false;
        }

        decimal product;
        try
        {
            product = number * multiplier;
        }
        catch (OverflowException)
        {
            error = $"{Untrusted.Quote(text)} is too large";
            return false;
        }

        if (product != decimal.Truncate(product))
        {
            error = $"{Untrusted.Quote(text)} is not a whole number of tokens ({product.ToString(CultureInfo.InvariantCulture)})";
            return false;
        }

        if (product > long.MaxValue)
        {
            error = $"{Untrusted.Quote(text)} is too large";
            return false;
        }

        value = (long)product;
        return true;
    }

    /// <summary>Shortest exact literal: 81920 → 80K (binary), 5000000000 → 5B (decimal), 1536 → 1536.</summary>
    public static string Format(long value, SizeBase sizeBase)
    {
        for (var i = Suffixes.Length - 1; i >= 0; i--)
        {
            var (suffix, dec, bin) = Suffixes[i];
            if (suffix == 'G')
            {
                continue;
            }

            var unit = sizeBase == SizeBase.Decimal ? dec : bin;
            if (value != 0 && value % unit == 0)
            {
                return (value / unit).ToString(CultureInfo.InvariantCulture) + suffix;
            }
        }

        return value.ToString(CultureInfo.InvariantCulture);
    }
}
