using Xunit.Abstractions;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Workflows.Artifacts;
using Workflows.Artifacts.Azurite;
using Workflows.Artifacts.ContentAddressing;
using Workflows.Artifacts.Store;
using Workflows.Engine.Steps;
using Workflows.Cli.Commands;
using Workflows.Engine;
using Workflows.Engine.Jobs;
using Workflows.Artifacts.Runs;
using Workflows.Engine.Orchestration;

using static Workflows.Cli.Tests.CliHarness;

namespace Workflows.Cli.Tests;

/// <summary>
/// A training job survives losing its machine: the real <c>wf gpu-agent</c> uploads checkpoints to the artifact store
/// while it trains, is killed with SIGKILL, and a new agent with an empty work folder and two "GPUs"
/// (<c>--gpus 2</c>: two <c>wf train-rank</c> processes over the CPU test transport) takes the job over once the dead
/// agent's lease lapses, resumes the one-process checkpoint from the store on two ranks, and ends with the weights of
/// an uninterrupted one-process run (to float32 summation order, as in <see cref="DataParallelTrainingTests"/>).
/// </summary>
public sealed class TrainCheckpointResumeTests(ITestOutputHelper output) : IDisposable
{
    private readonly Stopwatch clock = Stopwatch.StartNew();

    private void Phase(string what) => output.WriteLine($"{clock.Elapsed.TotalSeconds,6:0.0} s  {what}");

    private readonly string temp = Directory.CreateTempSubdirectory("wf-ckpt-").FullName;

    public void Dispose() => Directory.Delete(temp, recursive: true);

    private string Experiment()
    {
        // An experiments repository of its own (the path policy reads only inside it): the sample, the template.
        var samples = Directory.CreateDirectory(Path.Combine(temp, "samples")).FullName;
        File.Copy(Path.Combine(Root, "samples", "slimpajama-pd", "sample.jsonl.zst"), Path.Combine(samples, "sample.jsonl.zst"));
        var folder = Directory.CreateDirectory(Path.Combine(temp, "experiments")).FullName;
        var workflows = Directory.CreateDirectory(Path.Combine(temp, "workflows")).FullName;
        foreach (var file in Directory.GetFiles(Path.Combine(Root, "workflows"))) File.Copy(file, Path.Combine(workflows, Path.GetFileName(file)));
        var path = Path.Combine(folder, "resume-run.yaml");
        File.WriteAllText(path, $$"""
            name: resume-run
            profile: smoke
            workflow: continual-pretraining
            model:
              base: tiny
              architecture: { layers: 2, hidden_size: 64, heads: 4, kv_heads: 2, intermediate_size: 128 }
            data:
              paths: ["../samples/sample.jsonl.zst"]
              mix: { Book: 0.5, Github: 0.5 }
              upsampling: { mode: none }
              token_budget: 200K
              context: 512
              tokenizer: gpt2
              shards: 1
            training:
              lr: 1.0e-3
              batch_tokens: 2K
              micro_batch: 1
              precision: fp32
              max_steps: 24
              checkpoint_interval: 3
              keep_checkpoints: 2
            evaluation:
              needle: { enabled: false }
              domain_loss: { enabled: false }
            resources: { gpu: cpu, gpu_count: 2 }   # the two-GPU agent trains on 2 ranks, the first on its 1
            """);
        return path;
    }

    [Fact]
    public async Task A_gpu_agent_killed_mid_training_is_replaced_by_a_two_gpu_agent_with_an_empty_disk_that_resumes_from_the_store()
    {
        var external = Environment.GetEnvironmentVariable("WF_TEST_AZURITE_CONNECTION_STRING");
        await using var azurite = string.IsNullOrWhiteSpace(external)
            ? await AzuriteProcess.StartAsync(new AzuriteOptions
            {
                DataDirectory = Path.Combine(temp, "azurite"), Installation = AzuriteInstallation.Locate(AppContext.BaseDirectory), InstallIfMissing = true,
            })
            : null;
        var connection = azurite?.Connection ?? StorageConnection.FromConnectionString(external!);
        var hub = EngineOptions.UniqueHubName("wfckpt");
        var container = "ckpt-" + Guid.NewGuid().ToString("N")[..16];
        var experiment = Experiment();
        var processes = new List<Process>();
        try
        {
            var environment = new Dictionary<string, string>
            {
                ["WF_STORAGE_CONNECTION_STRING"] = connection.ConnectionString,
                ["WF_TASK_HUB"] = hub,
                ["WF_ARTIFACTS_CONTAINER"] = container,
                ["WF_LOG_LEVEL"] = "Information",
                ["WF_DATA_ROOTS"] = temp,   // the operator's rule for data outside the processes' working folder
            };
            var submit = Run(environment, "submit", experiment);
            submit.Exit.Should().Be(0, submit.Output);
            var runId = submit.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1]; // wf submit prints the run id

            Phase("submitted");
            processes.Add(Start(environment, "worker", Path.Combine(temp, "worker")));
            var first = Start(environment, "gpu-agent", Path.Combine(temp, "agent-1"));
            processes.Add(first);

            // Kill the agent as soon as one checkpoint is in the store (the run has 24 steps, one every 3).
            var store = await BlobArtifactStore.OpenAsync(connection, container);
            var watch = Stopwatch.StartNew();
            var client = await EngineClient.ConnectAsync(connection, new EngineOptions { TaskHubName = hub, ContainerName = container });
            while (await CheckpointsAsync(store) == 0)
            {
                var view = await client.GetAsync(runId);
                view?.Record.Status.Should().NotBe(RunStatus.Failed, view?.Record.Error + "\n" + Log());

                first.HasExited.Should().BeFalse("the first agent trains until it is killed: " + Log());
                watch.Elapsed.Should().BeLessThan(TimeSpan.FromMinutes(4), "a checkpoint is uploaded while training goes on: " + Log());
                await Task.Delay(100);
            }
            Phase("first checkpoint in the store");
            log.Enqueue("test: killing the first agent (SIGKILL)");
            Kill(first.Id, 9).Should().Be(0);
            await first.WaitForExitAsync();

            // A second agent on an empty disk takes the job over once the dead agent's lease has lapsed.
            processes.Add(Start(environment, "gpu-agent", Path.Combine(temp, "agent-2"), "--gpus", "2"));
            // The train job ends on the second agent (the evaluations after it are not this test's subject).
            var jobs = new GpuJobStore(store);
            var job = new GpuJobRef(runId, "train.1");
            GpuJobStatus? status = null;
            watch.Restart();
            while (status?.Claims is not [.., { Ended: not null }] || status.Claims.Count < 2)
            {
                var view = await client.GetAsync(runId);
                view?.Record.Status.Should().NotBe(RunStatus.Failed, view?.Record.Error + "\n" + Log());
                watch.Elapsed.Should().BeLessThan(TimeSpan.FromMinutes(6), "the second agent takes the job over once the lease lapses and finishes it: " + Log());
                await Task.Delay(500);
                status = await jobs.GetStatusAsync(job);
            }

            status.Claims[0].Ended.Should().NotBe(ClaimEndings.Succeeded, "the killed agent never finished");
            status.Claims[^1].Ended.Should().Be(ClaimEndings.Succeeded, Log());
            Phase("train job succeeded on the second agent");
            foreach (var p in processes) p.Kill(entireProcessTree: true);   // the evaluations after it would compete for the CPU
            var trained = status.Output!;
            var manifests = new ManifestStore(store);
            var manifest = (await manifests.TryGetAsync(ArtifactKey.FromParts(trained.Activity, JobStep.Version, trained.KeyHash)))!;
            manifest.Properties!["steps"].Should().Be("24");
            manifest.Properties["resumedFrom"].Should().StartWith("checkpoint-", "the second agent resumed from the store's newest checkpoint, not from step 0");

            // The published model against an uninterrupted run of the same experiment (wf prep + wf train, in-process).
            var published = Path.Combine(temp, "published");
            foreach (var entry in manifest.Entries.Where(e => e.Path.StartsWith("final-model/", StringComparison.Ordinal)))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(published, entry.Path))!);
                await manifests.DownloadVerifiedToFileAsync(manifest, entry.Path, Path.Combine(published, entry.Path));
            }
            var data = Path.Combine(temp, "data");
            Wf("prep", experiment, "--out", data, "--threads", "1").Exit.Should().Be(ExitCodes.Ok);
            Phase("straight run prepared");
            var straight = Wf("train", experiment, "--data", data, "--out", Path.Combine(temp, "straight"));
            straight.Exit.Should().Be(ExitCodes.Ok, straight.Err);
            Phase("straight run trained");
            DataParallelTrainingTests.ShouldMatch(DataParallelTrainingTests.Weights(published), DataParallelTrainingTests.Weights(Path.Combine(temp, "straight")),
                "resumed on another machine from the store, on two ranks, the run ends where an uninterrupted one-process run does");
        }
        finally
        {
            foreach (var p in processes.Where(p => !p.HasExited)) p.Kill(entireProcessTree: true);
            var engine = await EngineClient.ConnectAsync(connection, new EngineOptions { TaskHubName = hub, ContainerName = container });
            await engine.DeleteHubAsync();
            await connection.CreateBlobServiceClient().GetBlobContainerClient(container).DeleteIfExistsAsync();
        }
    }

    private static async Task<int> CheckpointsAsync(IArtifactStore store)
    {
        int count = 0;
        await foreach (var item in store.ListAsync("train-checkpoints/"))
            if (item.Name.Contains("/manifests/", StringComparison.Ordinal)) count++;
        return count;
    }

    private static (int Exit, string Stdout, string Output) Run(Dictionary<string, string> environment, params string[] args)
    {
        var info = Info(environment, args);
        using var process = Process.Start(info)!;
        var errors = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stdout + errors.Result);
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> log = new();

    private Process Start(Dictionary<string, string> environment, string role, string work, params string[] options)
    {
        var info = Info(environment, [role, .. options]);
        info.Environment["WF_COLLECTIVE_TIMEOUT"] = "60";
        info.Environment["WF_WORK_DIR"] = work;
        info.Environment["WF_DATA_CACHE"] = Path.Combine(work, "cache");
        var process = Process.Start(info)!;
        string name = $"{role} {Path.GetFileName(work)}";
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) log.Enqueue($"{name}: {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) log.Enqueue($"{name}: {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private string Log() => string.Join("\n", log.TakeLast(60));

    private static ProcessStartInfo Info(Dictionary<string, string> environment, string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(WorkerProcessTests.WfDll());
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (k, v) in environment) info.Environment[k] = v;
        info.WorkingDirectory = Root;
        return info;
    }

#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
}
