using System.CommandLine;
using System.Globalization;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Tokenization;
using Workflows.Evaluation.DomainLoss;
using Workflows.Evaluation.Heatmaps;
using Workflows.Evaluation.Needle;
using Workflows.Evaluation.Reports;
using Workflows.Evaluation.Scoring;
using Workflows.Experiments.Templates;

namespace Workflows.Cli.Commands;

/// <summary>wf eval needle | heatmap: the evaluation steps, runnable without the engine.</summary>
public static class EvalCommand
{
    public static Command Create(CliContext cli)
    {
        var eval = new Command("eval", "Evaluation without the engine: wf eval needle (run the grid), wf eval heatmap (draw it), wf eval loss (loss by domain and length), wf eval report (the run report from their outputs).");
        eval.Subcommands.Add(Needle(cli));
        eval.Subcommands.Add(Heatmap(cli));
        eval.Subcommands.Add(Loss(cli));
        eval.Subcommands.Add(Report(cli));
        return eval;
    }

    private static Command Needle(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment whose evaluation.needle section to run." };
        var model = new Option<string?>("--model") { Description = "A trained model folder in HuggingFace layout (e.g. the final-model/ of wf train). Not needed with --dry-run." };
        var output = new Option<string>("--out") { Description = "Folder for one result JSON per cell (rerunning resumes: finished cells are skipped).", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Path to tokenizer.model for llama-2 experiments (or set WF_LLAMA2_TOKENIZER)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Build every prompt, count prefill tokens with and without prefix reuse; run no model." };
        var haystack = new Option<string?>("--haystack") { Description = "Haystack folder of .txt files, instead of evaluation.needle.haystack (e.g. a local copy of Paul Graham's essays)." };
        var promptIds = new Option<string?>("--prompt-ids")
        {
            Description = "Write our prompt ids for a sample of cells (with the paper's BOS leak and with it fixed) to this JSON and exit: the input of bench/hf_needle_ids.py, which compares them with HuggingFace's tokenizer. No model.",
        };
        var cells = new Option<string?>("--cells") { Description = "With --prompt-ids: cells as LENGTH:DEPTH,... (default: 5 lengths x 4 depths spread over the grid)." };
        var command = new Command("needle", """
            Needle in a haystack as the paper's code runs it: the haystack (the spec's folder, default the shipped
            public-domain samples/haystack) in sorted file order repeated to length, the paper's needle, question and
            prompt, insertion moved back to the previous sentence end, greedy decoding with a KV cache that keeps the
            haystack prefix shared by a length's cells. One JSON per cell, written as it finishes; a rerun skips
            finished cells. Then draws heatmap.png in the paper's style into --out. An experiment with
            evaluation.needle.enabled: false is not evaluated: this says so and writes nothing, as the engine's step does.

            Examples:
              wf eval needle experiments/smoke.yaml --model out/smoke-train/final-model --out out/smoke/needle
              wf eval needle experiments/per-source-5b-80k.yaml --dry-run --out out/grid --tokenizer llama/tokenizer.model
              wf eval needle experiments/per-source-5b-80k.yaml --prompt-ids out/hf-check/ours.json --out out/hf-check \
                --tokenizer llama/tokenizer.model --haystack /data/lcde/eval/needle/PaulGrahamEssays
            """)
        {
            file, model, output, tokenizer, device, dryRun, haystack, promptIds, cells,
        };
        command.SetAction((parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return Task.FromResult(ExitCodes.InvalidInput);
            }

            var specDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            var parameters = NeedleParameters.From(spec);
            if (NeedleEvaluation.Disabled(parameters) is { } disabled)
            {
                cli.Out.WriteLine($"{path}: {disabled}; set it to true to run the grid");
                return Task.FromResult(ExitCodes.Ok);
            }

            ITokenizer tok;
            string haystackFolder;
            try
            {
                tok = TokenizerResolver.Resolve(spec.Data.Tokenizer, parse.GetValue(tokenizer), specDir);
                haystackFolder = parse.GetValue(haystack) is { } folder ? Path.GetFullPath(folder) : NeedleEvaluation.HaystackDirectory(spec.Evaluation.Needle, specDir);
                if (parse.GetValue(promptIds) is { } samplePath)
                {
                    var setup = NeedleSetup.FromSpec(spec.Evaluation.Needle with { Haystack = haystackFolder }, tok, haystackFolder, specDir);
                    var sampleCells = parse.GetValue(cells) is { } list ? ParseCells(list) : NeedlePromptSample.DefaultCells(setup.Grid);
                    var sample = NeedlePromptSample.Build(tok, setup.Haystack, NeedleTask.Paper, sampleCells);
                    sample.Write(samplePath);
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"wrote {samplePath}: {sample.Cells.Count} prompts ({sampleCells.Count} cells, BOS leak and fixed), {sample.Cells.Sum(c => c.PromptIds.Count):N0} ids; haystack {KnownHaystacks.Identify(sample.HaystackSha256).Name}"));
                    return Task.FromResult(ExitCodes.Ok);
                }

                if (parse.GetValue(dryRun))
                {
                    var dry = NeedleEvaluation.DryRun(parameters, tok, haystackFolder);
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{dry.Cells} cells, {dry.PromptTokens:N0} prompt tokens; {dry.PrefillTokensWithReuse:N0} to prefill with prefix reuse ({dry.PrefillSaving:0.00}x fewer)"));
                    return Task.FromResult(ExitCodes.Ok);
                }
            }
            catch (FormatException e)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return Task.FromResult(ExitCodes.Usage);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return Task.FromResult(ExitCodes.InvalidInput);
            }

            if (parse.GetValue(model) is not { } modelDir)
            {
                cli.Err.WriteLine("error: --model is required (a folder with config.json and safetensors), or use --dry-run");
                return Task.FromResult(ExitCodes.Usage);
            }

            var job = new NeedleEvaluationJob(parameters, tok, modelDir, haystackFolder, parse.GetValue(output)!, parse.GetValue(device)!);
            var result = NeedleEvaluation.Run(job, new SynchronousProgress<NeedleProgress>(p =>
            {
                if (p.Done == p.Total || p.Done % 10 == 0)
                {
                    cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"[{p.Done}/{p.Total}] length {p.Cell.ContextLength:N0} depth {p.Cell.DepthPercent}%: {(p.WasSkipped ? "done before" : $"score {p.Result.Score:0.###}")}"));
                }
            }), ct);
            cli.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{result.Summary.Ran} cells run, {result.Summary.Skipped} resumed, mean {result.Scorer} {result.Mean:0.000}, {result.Summary.Elapsed.TotalSeconds:0.0}s; reused {result.ReusedPrefixTokens:N0} prefix tokens; heatmap: {result.Heatmap}"));
            return Task.FromResult(ExitCodes.Ok);
        });
        return command;
    }

    private static List<(long Length, int Depth)> ParseCells(string text) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(c =>
        {
            var parts = c.Split(':');
            return parts.Length == 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var l) && l > 0
                && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var d) && d <= 100
                ? (l, d)
                : throw new FormatException($"--cells: '{c}' is not LENGTH:DEPTH (e.g. 1000:0,128000:100)");
        })];

    private static Command Loss(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment whose evaluation.domain_loss section to run." };
        var model = new Option<string>("--model") { Description = "A trained model folder in HuggingFace layout (e.g. final-model/ of wf train).", Required = true };
        var validation = new Option<string[]>("--validation")
        {
            Description = "Held-out SlimPajama-format files (e.g. the validation split), never the training files.",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };
        var output = new Option<string>("--out") { Description = "Folder for loss.json (every number, per bucket and per length, per source) and inputs.json (each file's SHA-256).", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Path to tokenizer.model for llama-2 experiments (or set WF_LLAMA2_TOKENIZER)." };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var command = new Command("loss", """
            Validation loss per SlimPajama source, in the Table 5 buckets (each held-out document with its BOS; a target
            at position t counts in bucket [a, b) when a <= t < b) and at each evaluation length (documents packed into
            sequences of exactly that length, the mean over all targets), as docs/evaluation.md defines. Prints the
            Table 5-style table with the paper's published numbers for the matching experiment beside ours.

            Example:
              wf eval loss experiments/smoke.yaml --model out/smoke-train/final-model --validation samples/slimpajama-pd/heldout.jsonl.zst --out out/smoke/loss
            """)
        {
            file, model, validation, output, tokenizer, device,
        };
        command.SetAction((parse, ct) =>
        {
            var path = parse.GetValue(file)!;
            if (ExperimentFile.Load(cli, path) is not { } spec)
            {
                return Task.FromResult(ExitCodes.InvalidInput);
            }

            DomainLossJob job;
            try
            {
                var tok = TokenizerResolver.Resolve(spec.Data.Tokenizer, parse.GetValue(tokenizer), Path.GetDirectoryName(Path.GetFullPath(path))!);
                job = new DomainLossJob(DomainLossParameters.From(spec), tok, parse.GetValue(model)!,
                    [.. InputFile.Discover(parse.GetValue(validation)!)], parse.GetValue(output)!, parse.GetValue(device)!);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or ArgumentException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return Task.FromResult(ExitCodes.InvalidInput);
            }

            var report = DomainLossRunner.Run(job, new SynchronousProgress<string>(cli.Out.WriteLine), ct).Report;
            var paper = PaperNumbers.MatchExperiment(spec.Name, out _);
            cli.Out.Write(DomainLossTable.ToMarkdown(DomainLossTable.Compare(report, null, paper), null, paper));
            cli.Out.WriteLine($"wrote {Path.Combine(job.OutputDirectory, DomainLossJson.FileName)}, {Path.Combine(job.OutputDirectory, DomainLossRunner.InputsFileName)}");
            return Task.FromResult(ExitCodes.Ok);
        });
        return command;
    }

    private static Command Report(CliContext cli)
    {
        var file = new Argument<string>("experiment") { Description = "The experiment the results belong to (its name, model, scorer, training length and baseline)." };
        var needle = new Option<string?>("--needle")
        {
            Description = "Folder of *_results.json from wf eval needle. Required unless the experiment sets evaluation.needle.enabled: false (then the report says the evaluation was disabled).",
        };
        var loss = new Option<string?>("--loss") { Description = "loss.json from wf eval loss (optional: without it the report has no loss table)." };
        var baselineNeedle = new Option<string?>("--baseline-needle") { Description = "The baseline's needle results folder: adds the difference heatmap and the Δ of the mean." };
        var baselineLoss = new Option<string?>("--baseline-loss") { Description = "The baseline's loss.json: adds the Δ columns, red where Δ > +0.01, green where Δ < -0.01 (Table 5's rule)." };
        var output = new Option<string>("--out") { Description = "Folder for report.md, report.json and the heatmap PNGs.", Required = true };
        var command = new Command("report", """
            The run report, as the engine's report step writes it, from results on disk: report.md (heatmap, mean needle
            score, per-length means, the domain x bucket loss table with Table 5's colour rule against the baseline, the
            paper's published numbers for the matching experiment beside ours, Loss@N) and report.json (every number).
            The baseline is the experiment's gitops.baseline; give its results with --baseline-needle / --baseline-loss.
            With evaluation.needle.enabled: false the report's needle section says the evaluation was disabled (no
            heatmap, mean or paper comparison) and --needle is refused.

            Example:
              wf eval needle experiments/smoke.yaml --model out/runs/RUN/train/final-model --out out/needle
              wf eval loss experiments/smoke.yaml --model out/runs/RUN/train/final-model --validation samples/slimpajama-pd/heldout.jsonl.zst --out out/loss
              wf eval report experiments/smoke.yaml --needle out/needle --loss out/loss/loss.json --out out/report
            """)
        {
            file, needle, loss, baselineNeedle, baselineLoss, output,
        };
        command.SetAction(parse =>
        {
            if (ExperimentFile.Load(cli, parse.GetValue(file)!) is not { } spec)
            {
                return ExitCodes.InvalidInput;
            }

            var needleFolder = parse.GetValue(needle);
            var disabled = NeedleEvaluation.Disabled(NeedleParameters.From(spec));
            if (disabled is not null && needleFolder is not null)
            {
                cli.Err.WriteLine($"error: {parse.GetValue(file)}: {disabled}, so the report has no needle results: drop --needle {needleFolder} (or enable the evaluation)");
                return ExitCodes.Usage;
            }

            if (disabled is null && needleFolder is null)
            {
                cli.Err.WriteLine($"error: --needle is required: {parse.GetValue(file)} runs the needle evaluation (evaluation.needle.enabled is true)");
                return ExitCodes.Usage;
            }

            try
            {
                var files = RunReport.Write(parse.GetValue(output)!, ReportParameters.From(spec),
                    new ReportSources(needleFolder, parse.GetValue(loss), parse.GetValue(baselineNeedle), parse.GetValue(baselineLoss)));
                cli.Out.WriteLine($"wrote {files.Markdown}, {files.Json}" + (files.Heatmap is null ? "" : $", {files.Heatmap}") + (files.DifferenceHeatmap is null ? "" : $", {files.DifferenceHeatmap}"));
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                cli.Err.WriteLine($"error: {e.Message}");
                return ExitCodes.InvalidInput;
            }
        });
        return command;
    }

    private static Command Heatmap(CliContext cli)
    {
        var results = new Argument<string>("results") { Description = "Folder of *_results.json from wf eval needle." };
        var output = new Option<string>("--out") { Description = "PNG to write.", Required = true };
        var baseline = new Option<string?>("--baseline") { Description = "Another results folder: draw the difference (experiment - baseline) instead." };
        // The names the result files and experiment files use (word-recall, ...), and sizes as experiment files write them (80K).
        var scorer = new Option<NeedleScoreKind?>("--scorer")
        {
            Description = "Which stored score to draw, by the name in the result files (default: word-recall).",
            HelpName = string.Join('|', Enum.GetValues<NeedleScoreKind>().Select(NeedleScorers.Name)),
            CustomParser = ParseScorer,
        };
        var training = new Option<long?>("--training-length")
        {
            Description = "Training context, drawn as a dashed line: 80K (= 81,920, binary as data.context) or 81920.",
            CustomParser = ParseTrainingLength,
        };
        var title = new Option<string>("--title") { Description = "Title (the mean score is added).", DefaultValueFactory = _ => "needle in a haystack" };
        var command = new Command("heatmap", """
            Draw a needle heatmap in the paper's style (depth rows x token-length columns, #F0496E -> #EBB839 -> #0CD79F
            over 0-1, dashed line at the training length, mean in the title), or the difference between two runs.

            Examples:
              wf eval heatmap out/smoke/needle --out heatmap.png --training-length 1K
              wf eval heatmap runs/per-source/needle --baseline runs/original/needle --out diff.png --scorer rouge1 --training-length 80K
            """)
        {
            results, output, baseline, scorer, training, title,
        };
        command.SetAction(parse =>
        {
            var kind = parse.GetValue(scorer) ?? NeedleScoreKind.WordRecall;
            var cells = NeedleAggregation.ByCell(NeedleResultFiles.ReadDirectory(parse.GetValue(results)!), kind);
            if (cells.Count == 0)
            {
                cli.Err.WriteLine($"error: no *_results.json in {parse.GetValue(results)}");
                return ExitCodes.InvalidInput;
            }

            var options = new HeatmapOptions(parse.GetValue(title)!, parse.GetValue(training));
            if (parse.GetValue(baseline) is { } other)
            {
                NeedleHeatmap.WriteDifference(parse.GetValue(output)!, cells, NeedleAggregation.ByCell(NeedleResultFiles.ReadDirectory(other), kind), options, kind.ToString());
            }
            else
            {
                NeedleHeatmap.Write(parse.GetValue(output)!, cells, options, kind.ToString());
            }

            var line = parse.GetValue(training) is { } length ? string.Create(CultureInfo.InvariantCulture, $", training length {length:N0}") : "";
            cli.Out.WriteLine($"wrote {parse.GetValue(output)} ({cells.Count} cells, {NeedleScorers.Name(kind)}{line})");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static NeedleScoreKind? ParseScorer(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens[0].Value;
        foreach (var kind in Enum.GetValues<NeedleScoreKind>())
        {
            if (string.Equals(text, NeedleScorers.Name(kind), StringComparison.OrdinalIgnoreCase)
                || string.Equals(text, kind.ToString(), StringComparison.OrdinalIgnoreCase))
            {
                return kind;
            }
        }

        result.AddError($"--scorer '{text}' is not a scorer: use one of {string.Join(", ", Enum.GetValues<NeedleScoreKind>().Select(NeedleScorers.Name))}");
        return null;
    }

    private static long? ParseTrainingLength(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens[0].Value;
        if (Workflows.Experiments.Spec.SizeLiteral.TryParse(text, Workflows.Experiments.Spec.SizeBase.Binary, out var length, out var error) && length > 0)
        {
            return length;
        }

        result.AddError($"--training-length: {error ?? $"'{text}' is not a positive length"} (e.g. 80K or 81920)");
        return null;
    }
}
