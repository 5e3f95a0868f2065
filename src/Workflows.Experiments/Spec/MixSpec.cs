namespace Workflows.Experiments.Spec;

/// <summary>
/// The source mix: <c>natural</c> (SlimPajama's own shares, <see cref="SlimPajama.NaturalMix"/>) or explicit
/// weights per source. In the canonical form both appear as the resolved weights, so writing the natural weights out
/// by hand is the same experiment as writing <c>natural</c>.
/// </summary>
public sealed record MixSpec(IReadOnlyDictionary<SlimPajamaSource, double>? Weights)
{
    public const double SumTolerance = 1e-6;

    public static MixSpec Natural { get; } = new((IReadOnlyDictionary<SlimPajamaSource, double>?)null);

    public bool IsNatural => Weights is null;

    /// <summary>Weight of every source (a source left out of explicit weights has weight 0).</summary>
    public IReadOnlyDictionary<SlimPajamaSource, double> Resolve() =>
        Weights is null
            ? SlimPajama.NaturalMix
            : SlimPajama.Sources.ToDictionary(s => s, s => Weights.TryGetValue(s, out var w) ? w : 0.0);
}

/// <summary>A document-length bucket [From, To) in tokens, written <c>0-4K</c> or <c>4K-128K</c> (binary K).</summary>
public sealed record LengthBucket(long From, long To)
{
    public override string ToString() => $"{SizeLiteral.Format(From, SizeBase.Binary)}-{SizeLiteral.Format(To, SizeBase.Binary)}";
}
