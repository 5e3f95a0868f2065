using System.Text.Json;
using TorchSharp;
using Workflows.DataPrep.Corpus;
using Workflows.DataPrep.Tokenization;
using Workflows.Experiments.Templates;
using Workflows.Training.Inference;
using Workflows.Training.Weights;

namespace Workflows.Evaluation.DomainLoss;

/// <summary>A domain-loss evaluation, however it was asked for (<c>wf eval loss</c>, the engine's evaluate-domain-loss step).</summary>
/// <param name="Files">The held-out files, never the training files (local paths, or local copies of a registered corpus).</param>
/// <param name="OutputDirectory">Receives loss.json and inputs.json (key, bytes and SHA-256 of every file read).</param>
public sealed record DomainLossJob(
    DomainLossParameters Parameters,
    ITokenizer Tokenizer,
    string ModelDirectory,
    IReadOnlyList<InputFile> Files,
    string OutputDirectory,
    string Device);

/// <summary>One held-out file as read: its key, size and SHA-256 (inputs.json).</summary>
public sealed record HeldOutFile(string Key, long Bytes, string Sha256);

/// <summary>What a domain-loss evaluation produced, and exactly which bytes it read.</summary>
public sealed record DomainLossResult(DomainLossReport Report, IReadOnlyList<HeldOutFile> Files);

/// <summary>
/// The one entry point for the loss by source and length: reads the held-out documents, loads the trained model onto
/// the device, runs <see cref="DomainLossEvaluation"/>, and writes <c>loss.json</c> and <c>inputs.json</c>.
/// <c>wf eval loss</c> and the engine's evaluate-domain-loss handler are thin adapters over it.
/// </summary>
public static class DomainLossRunner
{
    public const string InputsFileName = "inputs.json";

    public static DomainLossResult Run(DomainLossJob job, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        if (job.Files.Count == 0)
        {
            throw new ArgumentException("domain loss needs held-out files: set evaluation.domain_loss.paths (or .corpus), or enabled: false", nameof(job));
        }

        Directory.CreateDirectory(job.OutputDirectory);
        var read = job.Files.Select(f => new HeldOutFile(f.Key, new FileInfo(f.Path).Length, CorpusMeasurer.Sha256Of(f.Path))).ToList();
        var documents = job.Files.SelectMany(f => CorpusReader.Read(f, new CorpusReaderOptions(), new BadRecordLog(skip: false)))
            .Select(d => (d.Source, d.Text));
        using var model = HuggingFaceCheckpoint.LoadModel(job.ModelDirectory);
        model.to(torch.device(job.Device));
        model.eval();
        using var generator = new LlamaGenerator(model);
        var report = DomainLossEvaluation.Run(job.Parameters.Experiment, generator, job.Tokenizer, documents, job.Parameters.DomainLoss, progress, cancellationToken);
        DomainLossJson.Write(Path.Combine(job.OutputDirectory, DomainLossJson.FileName), report);
        File.WriteAllText(Path.Combine(job.OutputDirectory, InputsFileName), JsonSerializer.Serialize(read, DomainLossJson.Options));
        return new DomainLossResult(report, read);
    }
}
