using Workflows.Experiments.Templates;
using System.Text;
using System.Text.Json.Nodes;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Evaluation.Reports;

namespace Workflows.GitOps.Runs;

/// <summary>
/// Reads a run's published outputs from the artifact store by the output prefixes its record holds
/// (<c>cas/&lt;activity&gt;/&lt;hash&gt;/</c>): the report step's report.json/report.md/heatmap and the data-prep
/// manifest's shard and input hashes. Every read is verified against the output's manifest (SHA-256).
/// </summary>
public sealed class RunOutputsReader(IArtifactStore store)
{
    /// <summary>The engine's step outputs are all published at activity version 1 (Workflows.Engine.Steps.StepOutputs.Version).</summary>
    public const string OutputVersion = "1";

    public ManifestStore Manifests { get; } = new(store);

    public static ArtifactKey KeyOfPrefix(string outputPrefix)
    {
        var parts = outputPrefix.TrimEnd('/').Split('/');
        if (parts.Length != 3 || parts[0] + "/" != ArtifactKey.RootPrefix)
        {
            throw new ArgumentException($"'{outputPrefix}' is not an output prefix (cas/<activity>/<hash>/)", nameof(outputPrefix));
        }

        return ArtifactKey.FromParts(parts[1], OutputVersion, parts[2]);
    }

    /// <summary>The published output of the run's step of type <paramref name="activity"/> (by output prefix), or null.</summary>
    public async Task<Manifest?> OutputOfAsync(RunRecord record, string activity, CancellationToken cancellationToken = default)
    {
        var prefix = record.Steps.Select(s => s.OutputPrefix).FirstOrDefault(p => p is not null && p.StartsWith($"{ArtifactKey.RootPrefix}{activity}/", StringComparison.Ordinal));
        return prefix is null ? null : await Manifests.TryGetAsync(KeyOfPrefix(prefix), cancellationToken).ConfigureAwait(false);
    }

    public async Task<byte[]?> ReadAsync(Manifest manifest, string path, CancellationToken cancellationToken = default)
    {
        if (manifest.Find(path) is null)
        {
            return null;
        }

        await using var stream = await Manifests.OpenVerifiedAsync(manifest, path, cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        return buffer.ToArray();
    }

    public async Task<string?> ReadTextAsync(Manifest manifest, string path, CancellationToken cancellationToken = default) =>
        await ReadAsync(manifest, path, cancellationToken).ConfigureAwait(false) is { } bytes ? Encoding.UTF8.GetString(bytes) : null;

    /// <summary>The needle headline of the report step's report.json (mean score, or disabled), or null when the run has no report.</summary>
    public async Task<NeedleHeadline?> NeedleAsync(RunRecord record, CancellationToken cancellationToken = default)
    {
        var report = await OutputOfAsync(record, StepContracts.Report.Type, cancellationToken).ConfigureAwait(false);
        var json = report is null ? null : await ReadTextAsync(report, "report/report.json", cancellationToken).ConfigureAwait(false);
        return json is null ? null : NeedleHeadline.Of(JsonNode.Parse(json));
    }

    /// <summary>The data-prep output's fingerprint: shard path → SHA-256, input key → SHA-256, and the output's content hash.</summary>
    public async Task<DataPrepFingerprint?> DataPrepAsync(RunRecord record, CancellationToken cancellationToken = default)
    {
        var manifest = await OutputOfAsync(record, StepContracts.PrepareData.Type, cancellationToken).ConfigureAwait(false);
        if (manifest is null)
        {
            return null;
        }

        var shards = manifest.Entries.Where(e => e.Path.StartsWith("data/shard-", StringComparison.Ordinal))
            .ToDictionary(e => e.Path, e => e.Sha256, StringComparer.Ordinal);
        var inputs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (await ReadTextAsync(manifest, "data/manifest.json", cancellationToken).ConfigureAwait(false) is { } text
            && JsonNode.Parse(text)?["inputs"] is JsonArray list)
        {
            foreach (var i in list)
            {
                if (i?["key"]?.GetValue<string>() is { } key && i["sha256"]?.GetValue<string>() is { } sha)
                {
                    inputs[key] = sha;
                }
            }
        }

        return new DataPrepFingerprint(manifest.Key.Prefix, manifest.ContentHash, shards, inputs);
    }
}

/// <summary>
/// What a run's report.json says of the needle in one line: its mean score, or that the experiment disabled the
/// evaluation (<c>needle.state</c> "disabled"). A report written before the state field existed reads by its mean.
/// </summary>
public sealed record NeedleHeadline(double? Mean, bool Disabled)
{
    public static NeedleHeadline Of(JsonNode? report) => new(
        report?["needle"]?["mean"]?.GetValue<double>(),
        report?["needle"]?[EvaluationState.Property]?.GetValue<string>() == EvaluationState.Disabled);

    /// <summary>"0.512", "disabled", or <paramref name="missing"/> when the report has neither.</summary>
    public string Text(string missing) =>
        Disabled ? EvaluationState.Disabled : Mean is { } m ? m.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) : missing;
}

/// <summary>What makes two data preps the same: the SHA-256 of every shard (and of every input file read).</summary>
public sealed record DataPrepFingerprint(
    string OutputPrefix,
    string ContentHash,
    IReadOnlyDictionary<string, string> Shards,
    IReadOnlyDictionary<string, string> Inputs);
