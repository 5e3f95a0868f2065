using System.Runtime.CompilerServices;

// The tokenizer tests compare the cached/scan fast paths against the plain heap merge (LlamaSentencePieceTokenizer.EncodeUncached).
[assembly: InternalsVisibleTo("Workflows.DataPrep.Tests")]
