using Workflows.DataPrep.Tokenization;

namespace Workflows.Cli.Commands;

/// <summary>
/// Finds the tokenizer an experiment names. <c>llama-2</c> needs Meta's <c>tokenizer.model</c>, which wf cannot
/// ship: pass <c>--tokenizer PATH</c> or set <c>WF_LLAMA2_TOKENIZER</c>.
/// </summary>
public static class TokenizerResolver
{
    public const string LlamaEnvironmentVariable = "WF_LLAMA2_TOKENIZER";

    public static ITokenizer Resolve(string name, string? explicitPath, string relativeTo)
    {
        if (explicitPath is not null)
        {
            return TokenizerFactory.Create(explicitPath);
        }

        if (name == "llama-2")
        {
            var path = Environment.GetEnvironmentVariable(LlamaEnvironmentVariable);
            if (string.IsNullOrEmpty(path))
            {
                throw new FileNotFoundException(
                    $"tokenizer 'llama-2' needs LLaMA-2's tokenizer.model (Meta's licence forbids shipping it): pass --tokenizer PATH or set {LlamaEnvironmentVariable}; or use 'tokenizer: gpt2' for a demo");
            }

            return TokenizerFactory.Create(path);
        }

        return TokenizerFactory.Create(name == "gpt2" ? name : Path.GetFullPath(name, relativeTo));
    }
}
