using Workflows.Experiments.Spec;

namespace Workflows.DataPrep.Corpus;

/// <summary>
/// One document read from an input file, with where it came from so that any later error can name it.
/// </summary>
/// <param name="Text">The document text.</param>
/// <param name="Source">The SlimPajama source it belongs to.</param>
/// <param name="File">The input file's key (see <see cref="InputFile.Key"/>).</param>
/// <param name="Line">1-based line of a JSONL file (decompressed), or 1-based row of a Parquet file.</param>
/// <param name="ByteOffset">Offset of the line's first byte in the decompressed stream; -1 for Parquet rows.</param>
public sealed record CorpusDocument(string Text, SlimPajamaSource Source, string File, long Line, long ByteOffset);
