using DurableTask.Core;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Engine.Jobs;
using Workflows.Engine.Orchestration;
using Workflows.Experiments.Templates;

namespace Workflows.Engine.Steps;

/// <summary>Something a job reads from outside the store, resolved before the cache check: its name, its SHA-256, where the handler finds it.</summary>
/// <param name="Location">An absolute local path, a registered corpus's blob, or another run's output prefix: whatever the handler resolved it to.</param>
/// <param name="Bytes">Its length, where the handler needs it (a registered corpus file's local copy is checked by it).</param>
public sealed record ExternalInput(string Name, string Sha256, string Location, long Bytes = 0);

/// <summary>
/// One execution of a job step, the same record whether a worker runs it (an activity) or a GPU agent (a job):
/// the step's typed parameters as canonical JSON, the outputs of the steps it needs (by step type), the external
/// inputs it resolved, and the key all of them hash to. A handler is given this and nothing else.
/// </summary>
/// <param name="Inputs">Outputs of the steps this one needs, by their step type (what the contract names).</param>
/// <param name="ExperimentDirectory">Where the experiment file was submitted from: its relative paths resolve against it.</param>
/// <param name="Recompute">A forced rerun: compute again even when the key's output exists.</param>
public sealed record StepJob(
    string RunId,
    string Step,
    string Type,
    string Parameters,
    IReadOnlyDictionary<string, StepOutput> Inputs,
    string ExperimentDirectory,
    IReadOnlyList<ExternalInput> External,
    string KeyHash,
    bool Recompute)
{
    /// <summary>The key of the job's output (a method, not a property: the record crosses DTFx as JSON before its key is known).</summary>
    public ArtifactKey OutputKey() => ArtifactKey.FromParts(Type, JobStep.Version, KeyHash);

    /// <summary>The key this job's content hashes to: step type, parameters, input content hashes, external input hashes.</summary>
    public ArtifactKey ComputeKey() => ArtifactKey.Compute(Type, JobStep.Version, Parameters,
        Inputs.Select(i => KeyValuePair.Create("input:" + i.Key, i.Value.ContentHash))
            .Concat(External.Select(e => KeyValuePair.Create("external:" + e.Name, e.Sha256)))
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal));
}

/// <summary>
/// The work of a step type whose work is one job (train, the evaluations, report). The engine calls
/// <see cref="ResolveAsync"/> on a worker before the cache check, then <see cref="RunAsync"/> on a GPU agent (when the
/// contract needs a GPU) or in an activity; everything the handler writes under <see cref="JobContext.OutputDirectory"/>
/// is published as the step's output.
/// </summary>
public interface IJobHandler
{
    StepContract Contract { get; }

    /// <summary>What the job will read from outside the store, each with its SHA-256 (they enter the key).</summary>
    Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, CancellationToken cancellationToken);

    /// <summary>Does the work into the output folder; returns the properties recorded in the output's manifest.</summary>
    Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, Action<string> reportProgress, CancellationToken cancellationToken);
}

/// <summary>A job handler over its step type's parameters record (bound from the job's JSON for each call).</summary>
public abstract class JobHandler<TParameters> : IJobHandler
    where TParameters : class, IStepParameters
{
    protected JobHandler(StepContract contract)
    {
        if (contract.Parameters != typeof(TParameters))
        {
            throw new ArgumentException($"step type '{contract.Type}' reads {contract.Parameters.Name}, not {typeof(TParameters).Name}", nameof(contract));
        }

        Contract = contract;
    }

    public StepContract Contract { get; }

    public Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, CancellationToken cancellationToken) =>
        ResolveAsync(job, job.Parameters<TParameters>(), cancellationToken);

    public Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, Action<string> reportProgress, CancellationToken cancellationToken) =>
        RunAsync(job, job.Parameters<TParameters>(), reportProgress, cancellationToken);

    protected virtual Task<IReadOnlyList<ExternalInput>> ResolveAsync(JobContext job, TParameters parameters, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ExternalInput>>([]);

    protected abstract Task<IReadOnlyDictionary<string, string>> RunAsync(JobContext job, TParameters parameters, Action<string> reportProgress,
        CancellationToken cancellationToken);
}

/// <summary>What a handler works with: its job, its contract, the engine's services, a scratch output folder (deleted after publishing).</summary>
public sealed class JobContext(EngineServices services, StepJob job, StepContract contract, string outputDirectory)
{
    public EngineServices Services { get; } = services;
    public StepJob Job { get; } = job;
    public StepContract Contract { get; } = contract;
    public string OutputDirectory { get; } = outputDirectory;

    public T Parameters<T>()
        where T : class => StepParameters.Bind<T>(Job.Parameters, $"run {Job.RunId}, step '{Job.Step}'");

    /// <summary>The output of the needed step of <paramref name="type"/>; null only for an input the contract marks optional.</summary>
    public StepOutput? Input(string type) =>
        Job.Inputs.GetValueOrDefault(type)
        ?? (Contract.Input(type) is { Optional: true }
            ? null
            : throw new InvalidOperationException($"step '{Job.Step}' ({Job.Type}) has no input of type '{type}'; its inputs: {string.Join(", ", Job.Inputs.Keys)}"));

    /// <summary>A published output's files under <paramref name="folder"/>/, downloaded and verified once per content hash.</summary>
    public Task<string> DownloadAsync(StepOutput output, string folder, CancellationToken cancellationToken) =>
        StepOutputs.DownloadAsync(Services, output, folder, cancellationToken);

    /// <summary>The output folder's <paramref name="name"/> subfolder (created): where a handler writes what it publishes.</summary>
    public string OutputFolder(string name) => Directory.CreateDirectory(Path.Combine(OutputDirectory, name)).FullName;
}

/// <summary>Resolving and running a job: the same code whether a worker's activity or a GPU agent runs it.</summary>
public static class JobExecution
{
    public static Task<IReadOnlyList<ExternalInput>> ResolveAsync(EngineServices services, IJobHandler handler, StepJob job, CancellationToken cancellationToken) =>
        handler.ResolveAsync(new JobContext(services, job, handler.Contract, ""), cancellationToken);

    /// <summary>
    /// Checks the job against its key, runs the handler into a scratch folder and publishes every file in it under the
    /// key (the scratch folder is deleted whatever happens). A job whose output is already published (a redelivered
    /// activity, a job taken over after its agent published) returns that output without running again.
    /// </summary>
    public static async Task<StepOutput> RunAsync(EngineServices services, IJobHandler handler, StepJob job, Action<string> reportProgress,
        CancellationToken cancellationToken)
    {
        if (job.ComputeKey().Hash != job.KeyHash)
        {
            throw new InvalidDataException(
                $"the job of step '{job.Step}' (run {job.RunId}) does not hash to its key {job.KeyHash[..12]}: its parameters or inputs changed after it was enqueued; refusing to run it");
        }

        var key = job.OutputKey();
        if (!job.Recompute && await services.Manifests.TryGetAsync(key, cancellationToken).ConfigureAwait(false) is { } done)
        {
            return new StepOutput(job.Step, key.Activity, key.Hash, key.Prefix, done.ContentHash, Cached: false);
        }

        var output = services.NewScratchDirectory(job.Type);
        try
        {
            var properties = await handler.RunAsync(new JobContext(services, job, handler.Contract, output), reportProgress, cancellationToken).ConfigureAwait(false);
            var contentHash = await StepOutputs.PublishFolderAsync(services, key, job.RunId, output, properties, cancellationToken).ConfigureAwait(false);
            return new StepOutput(job.Step, key.Activity, key.Hash, key.Prefix, contentHash, Cached: false);
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }
}

/// <summary>
/// The job step: resolve external inputs → key → cache check → run the job (a GPU job when the contract needs a GPU,
/// else an activity) → the published output. One runner for every job step type; its activities dispatch by type.
/// </summary>
public static class JobStep
{
    /// <summary>The version of every job step's output key (the GitOps reader assumes it).</summary>
    public const string Version = "1";

    public static StepHandler Create(EngineServices services, IJobHandler handler)
    {
        var type = handler.Contract.Type;
        return new(handler.Contract, new Runner(handler.Contract, services.Options.GpuJobPollInterval),
        [
            new ActivityRegistration($"{type}.resolve", new Activity<StepJob, IReadOnlyList<ExternalInput>>(job => JobExecution.ResolveAsync(services, handler, job, CancellationToken.None))),
            new ActivityRegistration($"{type}.run", new Activity<StepJob, StepOutput>(job => JobExecution.RunAsync(services, handler, job, _ => { }, CancellationToken.None))),
            .. GpuJobStep.Activities(services),
        ], handler);
    }

    private sealed class Runner(StepContract contract, TimeSpan pollInterval) : IStepRunner
    {
        public async Task<StepOutput> RunAsync(StepScope scope)
        {
            var work = new StepJob(scope.Run.RunId, scope.Step.Id, scope.Step.Type, scope.Step.Parameters,
                scope.Inputs.Values.ToDictionary(o => o.Activity, StringComparer.Ordinal), scope.Run.ExperimentDirectory, [], "",
                Recompute: !scope.Run.MayReuseCache(scope.Step.Id));
            scope.Report(p => p with { Phase = "resolve inputs", Total = 1 });
            var external = await scope.CallAsync<IReadOnlyList<ExternalInput>>($"{contract.Type}.resolve", work);
            var job = work with { External = external, KeyHash = (work with { External = external }).ComputeKey().Hash };
            if (await scope.TryCachedAsync(job.OutputKey()) is { } cached)
            {
                return cached;
            }

            if (contract.Gpu)
            {
                return await GpuJobStep.RunAsync(scope, job, pollInterval);
            }

            var output = await scope.CallAsync<StepOutput>($"{contract.Type}.run", job);
            scope.Report(p => p with { Done = 1, Phase = null });
            return output;
        }
    }
}

/// <summary>A DTFx activity over a delegate.</summary>
internal sealed class Activity<TIn, TOut>(Func<TIn, Task<TOut>> run) : AsyncTaskActivity<TIn, TOut>
{
    protected override Task<TOut> ExecuteAsync(TaskContext context, TIn input) => run(input);
}
