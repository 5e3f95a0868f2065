using System.Globalization;
using Workflows.DataPrep.Tokenization;

namespace Workflows.Engine;

/// <summary>
/// How a worker or client talks to DTFx. The defaults are the settings issue 4 §5 measured against Azurite 3.37:
/// the DTFx defaults (30 s max polling, 5 min visibility timeouts, the machine name as worker id) make a fresh run
/// wait up to 16 s before it starts and a crashed worker's activities wait 5 minutes before anyone retries them.
/// </summary>
public sealed record EngineOptions
{
    /// <summary>DTFx task hub: queues, tables and lease blobs are named after it. 3-45 letters and digits, starting with a letter.</summary>
    public string TaskHubName { get; init; } = "wf";

    /// <summary>Control-queue partitions: how many workers can share orchestration work. Fixed for the life of a hub.</summary>
    public int PartitionCount { get; init; } = 4;

    /// <summary>Distinct per process (DTFx's default is the machine name, so two workers on one host would fight over leases).</summary>
    public string WorkerId { get; init; } = NewWorkerId();

    /// <summary>Upper bound of the queue back-off when idle; DTFx's 30 s default delays new runs by up to 16 s.</summary>
    public TimeSpan MaxQueuePollingInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a dequeued orchestration message stays invisible; DTFx renews it while the work item runs.</summary>
    public TimeSpan ControlQueueVisibilityTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a dequeued activity message stays invisible; renewed while the activity runs, so a killed worker's activity is retried after at most this long.</summary>
    public TimeSpan WorkItemQueueVisibilityTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Keep an orchestration's state in memory between episodes instead of reloading its history from the table
    /// each time: a fan-out of N otherwise costs O(N²) history reads as the results come in.
    /// </summary>
    public bool ExtendedSessions { get; init; } = true;

    /// <summary>Activities one worker runs at once.</summary>
    public int MaxConcurrentActivities { get; init; } = Math.Max(4, Environment.ProcessorCount * 4);

    /// <summary>Container for artifacts, run records and GPU jobs.</summary>
    public string ContainerName { get; init; } = "workflows";

    /// <summary>Local working folder of activities and agents (downloaded inputs, indexes, scratch output).</summary>
    public string CacheDirectory { get; init; } = Path.Combine(".wf", "cache");

    /// <summary>Turns an experiment's <c>data.tokenizer</c> into a tokenizer (the CLI knows about WF_LLAMA2_TOKENIZER).</summary>
    public Func<string, ITokenizer> ResolveTokenizer { get; init; } = TokenizerFactory.Create;

    /// <summary>How often an orchestration waiting for a GPU job polls the job's status as a safety net against a lost event.</summary>
    public TimeSpan GpuJobPollInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Device a GPU agent trains on (cpu, cuda, cuda:1).</summary>
    public string TrainingDevice { get; init; } = "cpu";

    /// <summary>Data-parallel ranks a GPU agent trains with (<c>wf gpu-agent --gpus N</c>): one process per GPU, each
    /// running <c>wf train-rank</c> (so the host must be the wf program). 1: training runs in the agent's process.</summary>
    public int TrainingRanks { get; init; } = 1;

    /// <summary>Where DTFx and the engine log (structured JSON lines in <c>wf worker</c>); null keeps DTFx silent.</summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; init; }

    public static string NewWorkerId() =>
        string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}");

    /// <summary>A task hub name unique enough for one test or benchmark run.</summary>
    public static string UniqueHubName(string prefix) => prefix + Guid.NewGuid().ToString("N")[..12];
}
