using Workflows.Experiments.Paths;

namespace Workflows.DataPrep.Tokenization;

/// <summary>Builds a tokenizer from the spec an experiment names.</summary>
public static class TokenizerFactory
{
    /// <summary>
    /// <c>gpt2</c> (any case) gives <see cref="Gpt2Tokenizer"/> (Id "gpt2"); anything else is a path to a SentencePiece
    /// <c>tokenizer.model</c> and gives <see cref="LlamaSentencePieceTokenizer"/> (Id "llama2-sp:&lt;sha256 prefix&gt;").
    /// Throws <see cref="FileNotFoundException"/> for a missing file and <see cref="InvalidDataException"/> /
    /// <see cref="NotSupportedException"/> (from the loader) for a file that is not a usable model.
    /// </summary>
    public static ITokenizer Create(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        if (spec.Trim().Equals("gpt2", StringComparison.OrdinalIgnoreCase))
        {
            return new Gpt2Tokenizer();
        }

        if (PathPolicy.Current.Check(spec, PathUse.File) is { Problem: { } problem })
        {
            throw new UnsafePathException($"tokenizer {PathPolicy.Show(spec)} {problem.Message} ({problem.Hint})");
        }

        if (!File.Exists(spec))
        {
            throw new FileNotFoundException(
                $"Tokenizer spec '{spec}' is neither 'gpt2' nor an existing SentencePiece tokenizer.model file.", spec);
        }

        return LlamaSentencePieceTokenizer.Load(spec);
    }
}
