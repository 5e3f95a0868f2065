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

/// <summary>An experiment ready to submit: the spec, its YAML exactly as written, the bound workflow, where it lives.</summary>
/// <param name="ExperimentDirectory">The folder the experiment's relative paths (data, held-out files, haystack, a base model folder) resolve against.</param>
public sealed record SubmitRequest(ExperimentSpec Spec, string ExperimentYaml, BoundWorkflow Workflow, string ExperimentDirectory, string CodeCommit)
{
    /// <summary>data.paths, absolute (recorded in the run record; an exact rerun checks them).</summary>
    public IReadOnlyList<string> DataPaths => Absolute(Spec.Data.Paths);

    /// <summary>evaluation.domain_loss.paths, absolute.</summary>
    public IReadOnlyList<string> HeldOutPaths => Absolute(Spec.Evaluation.DomainLoss.Paths);

    private IReadOnlyList<string> Absolute(IReadOnlyList<string>? paths) => [.. (paths ?? []).Select(p => Path.GetFullPath(p, ExperimentDirectory))];
}

/// <summary>What a submission records beside the experiment: the pull request behind it, or the run it reproduces.</summary>
public sealed record SubmitOptions
{
    public RunOrigin? Origin { get; init; }
    public string? RerunOf { get; init; }

    /// <summary>Recompute this step and every later one instead of reusing cached outputs (<c>wf rerun --force/--from</c>).</summary>
    public string? RecomputeFrom { get; init; }

    /// <summary>Free labels recorded with the run (e.g. a sweep's name and point); shown by <c>wf status</c>.</summary>
    public IReadOnlyDictionary<string, string>? Labels { get; init; }

    /// <summary>The sweep the run is a variant of (recorded only; sweeps are grouped outside the engine).</summary>
    public string? SweepId { get; init; }
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

    /// <summary>Where the task hub lives, safe to print (account and endpoint, never a key); null when built from parts.</summary>
    public string? Where { get; private init; }

    private string WhereText => Where ?? (Store as BlobArtifactStore)?.Location ?? "the store";

    public static async Task<EngineClient> ConnectAsync(StorageConnection connection, EngineOptions options)
    {
        var store = await BlobArtifactStore.OpenAsync(connection, options.ContainerName).ConfigureAwait(false);
        var service = EngineHost.CreateService(connection, options);
        try
        {
            await service.CreateIfNotExistsAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (StorageFailure.Describe(e) is not null)
        {
            throw StorageFailure.Explain(e, connection.Description, $"opening task hub '{options.TaskHubName}'");
        }

        return new EngineClient(service, store, options) { Where = connection.Description };
    }

    /// <summary>
    /// Loads an experiment file, its workflow template (<c>workflows/&lt;workflow&gt;.yaml</c>) and binds them. Throws
    /// <see cref="ValidationException"/> with the diagnostics when either is invalid.
    /// </summary>
    public static SubmitRequest Prepare(string experimentFile, string workflowsDirectory, string codeCommit)
    {
        var loaded = ExperimentLoader.LoadFile(experimentFile, new LoadOptions(WorkflowsDirectory: workflowsDirectory));
        return Prepare(loaded.Require(), File.ReadAllText(experimentFile), Path.GetDirectoryName(Path.GetFullPath(experimentFile))!, workflowsDirectory, codeCommit);
    }

    /// <summary>
    /// The same for a spec loaded already (a variant of a sweep file): <paramref name="experimentYaml"/> is what the run
    /// records, and relative paths resolve against <paramref name="folder"/> (the folder of the file it came from).
    /// </summary>
    public static SubmitRequest Prepare(ExperimentSpec spec, string experimentYaml, string folder, string workflowsDirectory, string codeCommit)
    {
        // wf validate refuses a run that fits on its GPUs under no placement; one whose memory plan chooses nothing
        // (it fits only with ZeRO stage 3 but turns activation checkpointing off) validates, and would fail only after
        // its data is prepared: refuse it before anything runs.
        if (ModelCatalog.Resolve(spec.Model) is { } shape
            && Workflows.Experiments.Planning.MemoryPlanner.Choose(spec, shape) is { Chosen: null } memory)
        {
            throw new InvalidOperationException(
                $"experiment '{spec.Name}' cannot run on {memory.GpuCount} x {memory.Gpu} (resources): {memory.Note}. Use GPUs it fits on (resources.gpu, gpu_count); 'wf plan' shows the memory plan");
        }

        var template = TemplateLoader.LoadFile(Path.Combine(workflowsDirectory, spec.Workflow + ".yaml"));
        if (!template.IsValid)
        {
            throw new ValidationException(template.Diagnostics);
        }

        return new SubmitRequest(spec, experimentYaml, TemplateLoader.Bind(template.Template!, spec), folder, codeCommit);
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
            Steps = [.. request.Workflow.Steps.Select(s => new StepRecord { Step = s.Id, Type = s.Type, Status = StepStates.Pending })],
            Origin = options.Origin,
            DataPaths = request.DataPaths,
            HeldOutPaths = request.HeldOutPaths,
            ExperimentDirectory = request.ExperimentDirectory,
            Labels = options.Labels,
            WorkflowName = request.Workflow.Name,
            WorkflowVersion = request.Workflow.Version,
            RerunOf = options.RerunOf,
            RecomputeFrom = options.RecomputeFrom,
            SweepId = options.SweepId,
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
            var input = new RunInput(runId, request.Spec.Name, hash, request.Workflow, request.ExperimentDirectory, options.RecomputeFrom);
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

    private static void RequireSameExperiment(RunRecord existing, string hash)
    {
        if (existing.ExperimentHash != hash)
        {
            throw new InvalidOperationException(
                $"run '{existing.RunId}' already exists for experiment '{existing.ExperimentName}' with a different content hash ({existing.ExperimentHash}, not {hash})");
        }
    }

    /// <summary>
    /// The run's record and its orchestration's state; null when neither exists. A run whose orchestration exists but
    /// whose record is gone throws <see cref="RunRecordMissingException"/>: the store was wiped or reset under it.
    /// Storage that cannot be used throws <see cref="StorageUnavailableException"/> naming the endpoint.
    /// </summary>
    public async Task<RunView?> GetAsync(string runId)
    {
        var stored = await Runs.GetAsync(runId).ConfigureAwait(false);
        var state = await StateAsync(runId).ConfigureAwait(false);
        if (stored is null)
        {
            return state is null ? null : throw new RunRecordMissingException(runId, RunRecordStore.RecordName(runId), WhereText);
        }

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

    /// <summary>DTFx's state of the run's orchestration (tables and queues: a failure there names the storage account, never a key).</summary>
    private async Task<OrchestrationState?> StateAsync(string runId)
    {
        try
        {
            return await _client.GetOrchestrationStateAsync(runId).ConfigureAwait(false);
        }
        catch (Exception e) when (StorageFailure.Describe(e) is not null)
        {
            throw StorageFailure.Explain(e, Where ?? "the engine's storage account", $"reading the state of run '{runId}'");
        }
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
            var view = await GetAsync(runId).ConfigureAwait(false)
                       ?? throw new RunRecordMissingException(runId, RunRecordStore.RecordName(runId), WhereText);
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

/// <summary>
/// A run's record (<c>runs/&lt;id&gt;/run.json</c>) is not in the store: a run id that never existed, or the store was
/// wiped or reset while the run was known to the engine. The message says which it looks like and where it looked.
/// </summary>
public sealed class RunRecordMissingException(string runId, string blob, string where)
    : Exception($"run '{runId}' has no record: {blob} is not in {where}. If the run was submitted there, the store was wiped or reset since (its outputs and record are gone; submit it again).")
{
    public string RunId { get; } = runId;
}
