using FluentAssertions;
using Workflows.DataPrep.Corpus;

namespace Workflows.DataPrep.Tests;

/// <summary>
/// The measure pass reads on one thread, tokenizes batches on several and writes them back in file order: its
/// length index and token cache must not depend on the thread count, and must hold exactly what encoding each
/// document alone gives.
/// </summary>
public sealed class MeasurePipelineTests
{
    [Fact]
    public void Token_cache_and_index_are_the_same_for_1_and_5_threads_and_match_encoding_each_document()
    {
        using var temp = new TempFolder();
        var file = InputFile.FromPaths([SharedCorpus.Validation])[0];
        var tokenizer = new Gpt2TestTokenizer();
        var one = CorpusMeasurer.Measure(file, new CorpusReaderOptions(), tokenizer, temp.File("one"), 1, null, default);
        var five = CorpusMeasurer.Measure(file, new CorpusReaderOptions(), tokenizer, temp.File("five"), 5, null, default);

        File.ReadAllBytes(LengthIndexStore.TokenCachePath(temp.File("five"), file.Key))
            .Should().Equal(File.ReadAllBytes(LengthIndexStore.TokenCachePath(temp.File("one"), file.Key)));
        File.ReadAllBytes(LengthIndexStore.IndexPath(temp.File("five"), file.Key))
            .Should().Equal(File.ReadAllBytes(LengthIndexStore.IndexPath(temp.File("one"), file.Key)));

        // Independent of the pipeline: the documents as the reader yields them, encoded one by one.
        var documents = CorpusReader.Read(file, new CorpusReaderOptions(), new BadRecordLog(skip: false)).ToList();
        five.Documents.Select(d => d.Line).Should().Equal(documents.Select(d => d.Line));
        var expected = new List<int>();
        foreach (var doc in documents)
        {
            tokenizer.Encode(doc.Text, expected);
        }

        var cache = File.ReadAllBytes(LengthIndexStore.TokenCachePath(temp.File("five"), file.Key));
        var ids = Enumerable.Range(0, cache.Length / 2).Select(i => (int)BitConverter.ToUInt16(cache, 2 * i)).ToList();
        ids.Should().Equal(expected);
        five.Header.Tokens.Should().Be(expected.Count);
        five.Documents.Sum(d => (long)d.Tokens).Should().Be(expected.Count);
    }
}
