using DurableTask.AzureStorage;
using DurableTask.Core;
using DurableTask.Core.Exceptions;
using Newtonsoft.Json;
using Workflows.Artifacts;
using Workflows.Artifacts.Runs;
using Workflows.Artifacts.Store;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Spec;
using Workflows.Experiments.Templates;
using Workflows.Experiments.Validation;

namespace Workflows.Engine;

/// <summary>An experiment ready to submit: the spec, its YAML exactly as written, the bound workflow, absolute input paths.</summary>
/// <param name="HeldOutPaths">The experiment's <c>evaluation.domain_loss.paths</c>, absolute (read by the evaluate-domain-loss step).</param>
public sealed record SubmitRequest(ExperimentSpec Spec, string ExperimentYaml, BoundWorkflow Workflow, IReadOnlyList<string> DataPaths, string CodeCommit,
    IReadOnlyList<string>? HeldOutPaths = null);

/// <summary>What a submission records beside the experiment: the pull request behind it, or the run it reproduces.</summary>
public sealed record SubmitOptions
{
    public RunOrigin? Origin { get; init; }
    public string? RerunOf { get; init; }

    /// <summary>Recompute this step and every later one instead of reusing cached outputs (<c>wf rerun --force/--from</c>).</summary>
    public string? RecomputeFrom { get; init; }
}

/// <summary>What <c>wf status RUN</c> shows: the run record, DTFx's view of the instance, live step progress, the result.</summary>
public sealed record RunView(RunRecord Record, string? OrchestrationStatus, RunProgress? Progress, RunResult? Result, string? FailureMessage)
{
    public bool IsFinished => Record.IsFinished || OrchestrationStatus is "Completed" or "Failed" or "Terminated" or "Canceled";
}

/// <summary>Submits, inspects and cancels runs. Needs no worker; a worker (<see cref="EngineHost"/>, <c>wf worker</c>) runs them.</summary>
public sealed class EngineClient
{
    private readonly TaskHubClient _client;

    public EngineClient(AzureStorageOrchestrationService service, IArtifactStore store, EngineOptions options)
    {
        Service = service;
        Store = store;
        Options = options;
        _client = new TaskHubClient(service);
        Runs = new RunRecordStore(store);
    }

    public AzureStorageOrchestrationService Service { get; }
    public IArtifactStore Store { get; }
    public EngineOptions Options { get; }
    public RunRecordStore Runs { get; }

    public static async Task<EngineClient> ConnectAsync(StorageConnection connection, EngineOptions options)
    {
        var store = await BlobArtifactStore.OpenAsync(connection, options.ContainerName).ConfigureAwait(false);
        var service = EngineHost.CreateService(connection, options);
        await service.CreateIfNotExistsAsync().ConfigureAwait(false);
        return new EngineClient(service, store, options);
    }

    /// <summary>
    /// Loads an experiment file, its workflow template (<c>workflows/&lt;workflow&gt;.yaml</c>) and binds them. Throws
    /// <see cref="ValidationException"/> with the diagnostics when either is invalid.
    /// </summary>
    public static SubmitRequest Prepare(string experimentFile, string workflowsDirectory, string codeCommit)
    {
        var loaded = ExperimentLoader.LoadFile(experimentFile, new LoadOptions(WorkflowsDirectory: workflowsDirectory));
        var spec = loaded.Require();
        var template = TemplateLoader.LoadFile(Path.Combine(workflowsDirectory, spec.Workflow + ".yaml"));
        if (!template.IsValid)
        {
            throw new ValidationException(template.Diagnostics);
        }

        var bound = TemplateLoader.Bind(template.Template!, spec);
        var folder = Path.GetDirectoryName(Path.GetFullPath(experimentFile))!;
        var paths = (spec.Data.Paths ?? []).Select(p => Path.GetFullPath(p, folder)).ToList();
        var heldOut = (spec.Evaluation.DomainLoss.Paths ?? []).Select(p => Path.GetFullPath(p, folder)).ToList();
        return new SubmitRequest(spec, File.ReadAllText(experimentFile), bound, paths, codeCommit, heldOut);
    }

    /// <summary>
    /// Records the run (<c>runs/&lt;id&gt;/</c>) and starts its orchestration; returns the run id (= DTFx instance id).
    /// Idempotent for a given <paramref name="runId"/>: submitting the same experiment under an id that exists returns
    /// it (starting its orchestration if an earlier attempt died between the record and the start); a different
    /// experiment under that id is refused.
    /// </summary>
    public async Task<string> SubmitAsync(SubmitRequest request, string? runId = null, SubmitOptions? options = null)
    {
        if (!EngineHost.SupportedWorkflowVersions.Contains(request.Workflow.Version))
        {
            throw new InvalidOperationException(
                $"workflow '{request.Workflow.Name}' version {request.Workflow.Version} is not supported by this build (supported: {string.Join(", ", EngineHost.SupportedWorkflowVersions)})");
        }

        options ??= new SubmitOptions();
        if (options.RecomputeFrom is { } from && request.Workflow.Steps.All(s => s.Id != from))
        {
            throw new InvalidOperationException(
                $"step '{from}' is not in workflow '{request.Workflow.Name}' (steps: {string.Join(", ", request.Workflow.Steps.Select(s => s.Id))})");
        }

        runId ??= RunRecord.NewRunId();
        // Names become blob prefixes and DTFx ids: refuse hostile ones before anything is written.
        Hosting.RunNames.ValidateRunId(runId);
        Hosting.RunNames.ValidateExperimentName(request.Spec.Name);
        var hash = CanonicalForm.Hash(request.Spec);
        var record = new RunRecord
        {
            RunId = runId,
            ExperimentName = request.Spec.Name,
            ExperimentHash = hash,
            CodeCommit = request.CodeCommit,
            EngineInstanceId = runId,
            SubmittedAt = DateTimeOffset.UtcNow,
            Steps = [.. request.Workflow.Steps.Select(s => new StepRecord { Step = s.Id, Status = StepStates.Pending })],
            Origin = options.Origin,
            DataPaths = request.DataPaths,
            HeldOutPaths = request.HeldOutPaths,
            WorkflowName = request.Workflow.Name,
            WorkflowVersion = request.Workflow.Version,
            RerunOf = options.RerunOf,
            RecomputeFrom = options.RecomputeFrom,
        };
        if (await Runs.GetAsync(runId).ConfigureAwait(false) is { } existing)
        {
            RequireSameExperiment(existing.Record, hash);
        }
        else
        {
            try
            {
                await Runs.CreateAsync(record, request.ExperimentYaml).ConfigureAwait(false);
            }
            catch (InvalidOperationException)
            {
                // A concurrent delivery of the same submission may have won; anything else is rethrown.
                var raced = await Runs.GetAsync(runId).ConfigureAwait(false);
                if (raced is null)
                {
                    throw;
                }

                RequireSameExperiment(raced.Record, hash);
            }
        }

        if (await _client.GetOrchestrationStateAsync(runId).ConfigureAwait(false) is null)
        {
            var heldOut = await HeldOutInputsAsync(request).ConfigureAwait(false);
            var input = new RunInput(runId, request.Spec.Name, hash, request.Workflow, request.DataPaths, options.RecomputeFrom,
                heldOut.Count == 0 ? null : new Dictionary<string, IReadOnlyDictionary<string, string>> { [Jobs.DomainLossJobHandler.StepType] = heldOut });
            try
            {
                await _client.CreateOrchestrationInstanceAsync(ExperimentOrchestration.Name, EngineHost.OrchestrationVersion(request.Workflow.Version), runId, input)
                    .ConfigureAwait(false);
            }
            catch (OrchestrationAlreadyExistsException)
            {
                // started by a concurrent delivery of the same submission
            }
        }

        return runId;
    }

    /// <summary>
    /// The held-out files' "held-out:KEY" → SHA-256 for the domain-loss step's cache key: local paths hashed here (the submitter reads
    /// them, as it reads data.paths), or the registered corpus's manifest. Empty when domain loss is off or names no data
    /// (the step then fails or publishes "disabled" by itself), the workflow has no such step, a local file cannot be
    /// read here (the step, on the worker, reports the missing file itself), or the corpus is not registered (likewise).
    /// </summary>
    private async Task<IReadOnlyDictionary<string, string>> HeldOutInputsAsync(SubmitRequest request)
    {
        var loss = request.Spec.Evaluation.DomainLoss;
        if (!loss.Enabled || request.Workflow.Steps.All(s => s.Type != Jobs.DomainLossJobHandler.StepType))
        {
            return new Dictionary<string, string>();
        }

        if (request.HeldOutPaths is { Count: > 0 } paths)
        {
            try
            {
                return Workflows.DataPrep.Corpus.InputFile.Discover(paths)
                    .ToDictionary(f => "held-out:" + f.Key, f => Workflows.DataPrep.Corpus.CorpusMeasurer.Sha256Of(f.Path), StringComparer.Ordinal);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException)
            {
                return new Dictionary<string, string>();
            }
        }

        if (loss.Corpus is { } corpus && await new Workflows.Artifacts.Corpora.CorpusRegistry(Store).TryGetAsync(corpus).ConfigureAwait(false) is { } manifest)
        {
            return manifest.Files.ToDictionary(f => "held-out:corpus:" + f.Key, f => f.Sha256, StringComparer.Ordinal);
        }

        return new Dictionary<string, string>();
    }

    private static void RequireSameExperiment(RunRecord existing, string hash)
    {
        if (existing.ExperimentHash != hash)
        {
            throw new InvalidOperationException(
                $"run '{existing.RunId}' already exists for experiment '{existing.ExperimentName}' with a different content hash ({existing.ExperimentHash}, not {hash})");
        }
    }

    public async Task<RunView?> GetAsync(string runId)
    {
        var stored = await Runs.GetAsync(runId).ConfigureAwait(false);
        if (stored is null)
        {
            return null;
        }

        var state = await _client.GetOrchestrationStateAsync(runId).ConfigureAwait(false);
        RunProgress? progress = null;
        RunResult? result = null;
        if (!string.IsNullOrEmpty(state?.Status))
        {
            progress = JsonConvert.DeserializeObject<RunProgress>(state.Status);
        }

        if (state?.OrchestrationStatus == OrchestrationStatus.Completed && !string.IsNullOrEmpty(state.Output))
        {
            result = JsonConvert.DeserializeObject<RunResult>(state.Output);
        }

        var failure = state?.OrchestrationStatus == OrchestrationStatus.Failed ? state.FailureDetails?.ErrorMessage ?? state.Output : null;
        return new RunView(stored.Record, state?.OrchestrationStatus.ToString(), progress, result, failure);
    }

    public async Task<IReadOnlyList<RunRecord>> ListAsync(CancellationToken cancellationToken = default)
    {
        var list = new List<RunRecord>();
        await foreach (var r in Runs.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(r);
        }

        return list;
    }

    /// <summary>Terminates the orchestration and marks the run cancelled. Activities already running finish; nothing new is scheduled.</summary>
    public async Task CancelAsync(string runId, string reason)
    {
        await _client.TerminateInstanceAsync(new OrchestrationInstance { InstanceId = runId }, reason).ConfigureAwait(false);
        await Runs.UpdateAsync(runId, r => r.IsFinished ? r : r with
        {
            Status = RunStatus.Cancelled,
            CompletedAt = DateTimeOffset.UtcNow,
            Error = $"cancelled: {reason}",
        }).ConfigureAwait(false);
    }

    public Task RaiseEventAsync(string runId, string name, object payload) =>
        _client.RaiseEventAsync(new OrchestrationInstance { InstanceId = runId }, name, payload);

    /// <summary>Polls until the run finishes (or <paramref name="cancellationToken"/> fires: the run goes on), reporting each view.</summary>
    public async Task<RunView> WaitAsync(string runId, Action<RunView>? onUpdate = null, TimeSpan? pollInterval = null, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var view = await GetAsync(runId).ConfigureAwait(false) ?? throw new InvalidOperationException($"run '{runId}' does not exist");
            onUpdate?.Invoke(view);
            // The run record is marked finished by the orchestration's last activity, a moment before the orchestration
            // itself completes with its result: wait for the orchestration (unless its state is gone, e.g. hub deleted).
            if (view.OrchestrationStatus is "Completed" or "Failed" or "Terminated" or "Canceled"
                || (view.Record.IsFinished && view.OrchestrationStatus is null))
            {
                return view;
            }

            await Task.Delay(pollInterval ?? TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes the task hub's queues, tables and lease blobs (tests, benchmarks). Artifacts and run records stay.</summary>
    public Task DeleteHubAsync() => Service.DeleteAsync();
}
