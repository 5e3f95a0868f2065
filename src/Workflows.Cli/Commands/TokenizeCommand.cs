using System.CommandLine;
using System.Text.Json;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Tokenization;

namespace Workflows.Cli.Commands;

public static class TokenizeCommand
{
    public static Command Create(CliContext cli)
    {
        var files = new Argument<string[]>("files") { Description = "SlimPajama-format files (.jsonl.zst, .jsonl, .jsonl.gz, .parquet) or plain .txt files.", Arity = ArgumentArity.OneOrMore };
        var tokenizer = new Option<string>("--tokenizer") { Description = "gpt2, or a path to a SentencePiece tokenizer.model.", Required = true };
        var special = new Option<bool>("--add-special") { Description = "Add BOS before and EOS after each document (when the vocabulary has them)." };
        var command = new Command("tokenize", """
            Tokenize documents and print one JSON line per document: {"file","line","source","ids"}. For debugging and
            for comparing tokenizers (ids carry no BOS/EOS unless --add-special).

            Examples:
              wf tokenize --tokenizer gpt2 samples/slimpajama-pd/sample.jsonl.zst | head -1
              wf tokenize --tokenizer llama/tokenizer.model notes.txt
            """)
        {
            files, tokenizer, special,
        };
        command.SetAction(parse =>
        {
            ITokenizer tok;
            try
            {
                tok = TokenizerFactory.Create(parse.GetValue(tokenizer)!);
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidDataException or NotSupportedException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            var addSpecial = parse.GetValue(special);
            var ids = new List<int>();
            try
            {
                foreach (var path in parse.GetValue(files)!)
                {
                    IEnumerable<(long Line, string? Source, string Text)> docs = path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)
                        ? [(1, null, File.ReadAllText(path))]
                        : CorpusReader.Read(InputFile.FromPaths([path])[0], new CorpusReaderOptions(), new BadRecordLog(skip: false))
                            .Select(d => (d.Line, (string?)d.Source.ToString(), d.Text));
                    foreach (var (line, source, text) in docs)
                    {
                        ids.Clear();
                        if (addSpecial && tok.BosId is { } bos)
                        {
                            ids.Add(bos);
                        }

                        tok.Encode(text, ids);
                        if (addSpecial && tok.EosId is { } eos)
                        {
                            ids.Add(eos);
                        }

                        cli.Out.WriteLine(JsonSerializer.Serialize(new { file = path, line, source, ids }));
                    }
                }
            }
            catch (Exception e) when (e is CorpusFormatException or FileNotFoundException or DirectoryNotFoundException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
