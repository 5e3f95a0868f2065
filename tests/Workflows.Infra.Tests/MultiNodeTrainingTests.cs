using System.Diagnostics;
using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;

namespace Workflows.Infra.Tests;

/// <summary>
/// infra/k8s/multinode: the Indexed Job that runs `wf train --gpus N` on several GPU nodes, its headless Service, its
/// parameters, and the shared ReadWriteMany volume (issue 13). The pod's start script is run for real under /bin/sh,
/// with the environment the kubelet would give pod i, and stand-ins for DNS (getent) and wf.
/// </summary>
public class MultiNodeTrainingTests
{
    private static string Folder => Path.Combine(Infra.K8s, "multinode");
    private static string SharedFolder => Path.Combine(Folder, "shared");

    private static T One<T>(string folder, string file) => Infra.LoadObjects(Path.Combine(folder, file)).OfType<T>().Single();
    private static V1Job Job => One<V1Job>(Folder, "job.yaml");
    private static V1Service Service => One<V1Service>(Folder, "service.yaml");
    private static V1ConfigMap Parameters => One<V1ConfigMap>(Folder, "params.yaml");
    private static V1PodDisruptionBudget Budget => One<V1PodDisruptionBudget>(Folder, "pdb.yaml");
    private static V1PersistentVolumeClaim SharedClaim => One<V1PersistentVolumeClaim>(SharedFolder, "volume.yaml");
    private static V1Pod Shell => One<V1Pod>(SharedFolder, "shell.yaml");
    private static V1Deployment GpuAgent => Infra.BaseObjects().OfType<V1Deployment>().Single(d => d.Metadata.Name == "wf-gpu-agent");
    private static V1Deployment Worker => Infra.BaseObjects().OfType<V1Deployment>().Single(d => d.Metadata.Name == "wf-worker");

    private static bool Selects(IDictionary<string, string> selector, IDictionary<string, string> labels) =>
        selector.All(l => labels.TryGetValue(l.Key, out var v) && v == l.Value);

    private static int Parameter(V1ConfigMap parameters, string key) => int.Parse(parameters.Data[key], CultureInfo.InvariantCulture);

    private const string CompletionIndexField = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
    private const string JobNameField = "metadata.labels['batch.kubernetes.io/job-name']";

    [Fact]
    public void Kustomizations_list_their_files_and_pin_the_images_they_use()
    {
        foreach (var (dir, placeholder) in new[] { (Folder, PodInvariants.ImagePlaceholderGpu), (SharedFolder, PodInvariants.ImagePlaceholderWorker) })
        {
            var k = Kustomization.Load(dir);
            k.Resources.Should().NotBeEmpty();
            foreach (var r in k.Resources) File.Exists(Path.Combine(dir, r)).Should().BeTrue($"{dir}/kustomization.yaml lists {r}");
            k.Images.Should().ContainKey(placeholder);
            var (newName, tag) = k.Images[placeholder];
            newName.Should().Contain("/");
            tag.Should().NotBeNullOrEmpty().And.NotBe("latest");
        }
        // The volume is not part of the training kustomization: deleting a run must not delete its data.
        Kustomization.Load(Folder).Resources.Should().NotContain(r => r.Contains("shared", StringComparison.Ordinal));
        Kustomization.Load(Folder).Resources.Should().BeEquivalentTo("params.yaml", "service.yaml", "job.yaml", "pdb.yaml");
    }

    [Fact]
    public void Training_job_is_indexed_one_pod_per_node_and_fails_as_a_group()
    {
        var job = Job;
        var nodes = Parameter(Parameters, "NNODES");
        job.Spec.CompletionMode.Should().Be("Indexed");
        job.Spec.Parallelism.Should().Be(nodes, "every pod of the group runs at once");
        job.Spec.Completions.Should().Be(job.Spec.Parallelism);
        job.Spec.BackoffLimit.Should().Be(0, "a failed rank fails the group; the rerun resumes from the checkpoint");
        var pod = job.Spec.Template.Spec;
        pod.RestartPolicy.Should().Be("Never");

        // Same pool and taint as the GPU agent, and one pod per node.
        pod.NodeSelector.Should().BeEquivalentTo(GpuAgent.Spec.Template.Spec.NodeSelector);
        pod.Tolerations.Should().BeEquivalentTo(GpuAgent.Spec.Template.Spec.Tolerations);
        var antiAffinity = pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution.Should().ContainSingle().Subject;
        antiAffinity.TopologyKey.Should().Be("kubernetes.io/hostname");
        Selects(antiAffinity.LabelSelector.MatchLabels, job.Spec.Template.Metadata.Labels).Should().BeTrue();

        // Long enough for every rank to write its shard of a checkpoint: at least what the GPU agent gets for one GPU.
        pod.TerminationGracePeriodSeconds.Should().BeGreaterThanOrEqualTo(GpuAgent.Spec.Template.Spec.TerminationGracePeriodSeconds!.Value);

        // Evictions wait for the run: the budget selects the training pods and allows none to go.
        var budget = Budget;
        budget.Spec.MaxUnavailable.Value.Should().Be("0");
        Selects(budget.Spec.Selector.MatchLabels, job.Spec.Template.Metadata.Labels).Should().BeTrue();
        Selects(budget.Spec.Selector.MatchLabels, GpuAgent.Spec.Template.Metadata.Labels).Should().BeFalse("the GPU agents are not held by the run");
    }

    [Fact]
    public void Training_pods_satisfy_the_pod_invariants_with_all_the_nodes_gpus()
    {
        var gpus = Parameter(Parameters, "GPUS_PER_NODE");
        gpus.Should().BeGreaterThan(0);
        PodInvariants.Violations(Job, PodRole.Trainer(gpus)).Should().BeEmpty();

        var c = Job.Spec.Template.Spec.Containers.Should().ContainSingle().Subject;
        c.Image.Should().Be(PodInvariants.ImagePlaceholderGpu);
        c.Resources.Requests[PodInvariants.GpuResource].Should().Be(c.Resources.Limits[PodInvariants.GpuResource]);

        // NVLink multicast off, as a literal that every rank inherits through the launcher.
        c.Env.Should().ContainSingle(e => e.Name == "NCCL_NVLS_ENABLE").Which.Value.Should().Be("0");

        // NCCL's shared memory: /dev/shm from a memory-backed emptyDir larger than the container default of 64 MiB.
        var shm = c.VolumeMounts.Should().ContainSingle(m => m.MountPath == "/dev/shm").Subject;
        var shmVolume = Job.Spec.Template.Spec.Volumes.Single(v => v.Name == shm.Name).EmptyDir;
        shmVolume.Medium.Should().Be("Memory");
        shmVolume.SizeLimit.ToDecimal().Should().BeGreaterThan(64m * 1024 * 1024);
    }

    [Fact]
    public void The_invariants_catch_a_training_pod_with_credentials_or_the_wrong_gpu_count()
    {
        var broken = Job;
        var c = broken.Spec.Template.Spec.Containers[0];
        broken.Spec.Template.Metadata.Labels[PodInvariants.WorkloadIdentityLabel] = "true";
        c.Env.Add(new V1EnvVar
        {
            Name = "WF_STORAGE_CONNECTION_STRING",
            ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = "wf-storage", Key = "WF_STORAGE_CONNECTION_STRING" } },
        });
        c.EnvFrom.Add(new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = "wf-github" } });
        c.Resources.Limits[PodInvariants.GpuResource] = new ResourceQuantity("4");

        var v = PodInvariants.Violations(broken, PodRole.Trainer(Parameter(Parameters, "GPUS_PER_NODE")));
        v.Should().Contain(x => x.Contains("talks to no Azure service", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("reads Secret wf-storage", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("from Secret wf-github", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("must request exactly", StringComparison.Ordinal));
        // The same pod as a GPU agent would lack its probes.
        PodInvariants.Violations(Job, PodRole.GpuAgent).Should().Contain(x => x.Contains("no liveness probe", StringComparison.Ordinal));
    }

    [Fact]
    public void Headless_service_names_pod_zero_and_node_rank_is_the_completion_index()
    {
        var job = Job;
        var service = Service;
        var parameters = Parameters;
        service.Spec.ClusterIP.Should().Be("None", "headless: DNS names of the pods, no virtual IP");
        service.Spec.PublishNotReadyAddresses.Should().NotBe(true, "the start gate counts a name as a running pod");
        service.Spec.Selector.Should().NotBeEmpty();
        Selects(service.Spec.Selector, job.Spec.Template.Metadata.Labels).Should().BeTrue("the Service must select the training pods");
        job.Spec.Template.Spec.Subdomain.Should().Be(service.Metadata.Name, "pod i resolves as <job>-i.<subdomain> only under a Service of that name");
        service.Spec.Ports.Should().ContainSingle().Which.Port.Should().Be(Parameter(parameters, "MASTER_PORT"));

        var c = job.Spec.Template.Spec.Containers[0];
        c.EnvFrom.Should().ContainSingle().Which.ConfigMapRef.Name.Should().Be(parameters.Metadata.Name);
        c.Env.Single(e => e.Name == "NODE_RANK").ValueFrom.FieldRef.FieldPath.Should().Be(CompletionIndexField);

        var nodes = Parameter(parameters, "NNODES");
        for (int index = 0; index < nodes; index++)
        {
            var env = PodEnvironment(job, parameters, index);
            env["MASTER_ADDR"].Should().Be($"{job.Metadata.Name}-0.{service.Metadata.Name}", "every node meets at pod 0 through the headless Service");
            env["NODE_RANK"].Should().Be(index.ToString(CultureInfo.InvariantCulture));
            env["NNODES"].Should().Be(nodes.ToString(CultureInfo.InvariantCulture));
            env["MASTER_PORT"].Should().Be(service.Spec.Ports[0].Port.ToString(CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void Out_data_and_experiment_are_on_the_shared_ReadWriteMany_volume()
    {
        var claim = SharedClaim;
        claim.Spec.AccessModes.Should().Contain("ReadWriteMany", "the ranks of all nodes write into one checkpoint folder");
        claim.Spec.Resources.Requests.Should().ContainKey("storage");

        var pod = Job.Spec.Template.Spec;
        var volume = pod.Volumes.Should().ContainSingle(v => v.PersistentVolumeClaim != null).Subject;
        volume.PersistentVolumeClaim.ClaimName.Should().Be(claim.Metadata.Name);
        volume.PersistentVolumeClaim.ReadOnlyProperty.Should().NotBe(true);
        var mount = pod.Containers[0].VolumeMounts.Should().ContainSingle(m => m.Name == volume.Name).Subject;
        mount.ReadOnlyProperty.Should().NotBe(true);
        foreach (var key in new[] { "TRAIN_OUT", "TRAIN_DATA", "TRAIN_EXPERIMENT" })
        {
            Parameters.Data[key].Should().StartWith(mount.MountPath.TrimEnd('/') + "/", $"{key} must be on the shared volume");
        }

        // The shell pod that fills the volume: same claim and mount path, the worker's pool, the same pod rules.
        var shell = Shell;
        PodInvariants.Violations(shell, PodRole.SharedShell).Should().BeEmpty();
        shell.Spec.Containers[0].Image.Should().Be(PodInvariants.ImagePlaceholderWorker);
        shell.Spec.NodeSelector.Should().BeEquivalentTo(Worker.Spec.Template.Spec.NodeSelector);
        var shellVolume = shell.Spec.Volumes.Single(v => v.PersistentVolumeClaim != null);
        shellVolume.PersistentVolumeClaim.ClaimName.Should().Be(claim.Metadata.Name);
        shell.Spec.Containers[0].VolumeMounts.Single(m => m.Name == shellVolume.Name).MountPath.Should().Be(mount.MountPath);
        foreach (var o in new IMetadata<V1ObjectMeta>[] { Job, Service, Parameters, Budget, claim, shell })
        {
            o.Metadata.NamespaceProperty.Should().Be(GpuAgent.Metadata.NamespaceProperty);
        }
    }

    [Fact]
    public void Start_script_waits_for_every_pod_then_runs_wf_train_with_the_launchers_layout()
    {
        using var stubs = new StartScriptStubs();
        var job = Job;
        var parameters = Parameters;
        int nodes = Parameter(parameters, "NNODES"), gpus = Parameter(parameters, "GPUS_PER_NODE");
        gpus.Should().BeGreaterThan(1, "the example is the launcher case; the one-GPU case is below");
        var peers = Enumerable.Range(0, nodes).Select(i => $"{job.Metadata.Name}-{i}.{Service.Metadata.Name}").ToList();

        var run = stubs.Run(job, parameters, index: nodes - 1, resolvable: peers, late: peers[^1]);
        run.ExitCode.Should().Be(0, run.Stderr);
        run.Lookups.Should().Equal(peers.Append(peers[^1]), "the gate resolves every pod's name, in order, and asks again for one still starting");
        run.Arguments.Should().Equal("train", parameters.Data["TRAIN_EXPERIMENT"], "--data", parameters.Data["TRAIN_DATA"],
            "--out", parameters.Data["TRAIN_OUT"], "--device", "cuda", "--gpus", gpus.ToString(CultureInfo.InvariantCulture), "--resume");
        // wf's launcher numbers the ranks from these; the pod itself sets no rank.
        run.Environment.Should().Contain("NODE_RANK", (nodes - 1).ToString(CultureInfo.InvariantCulture))
            .And.Contain("NNODES", nodes.ToString(CultureInfo.InvariantCulture))
            .And.Contain("MASTER_ADDR", peers[0])
            .And.Contain("MASTER_PORT", parameters.Data["MASTER_PORT"])
            .And.Contain("NCCL_NVLS_ENABLE", "0")
            .And.NotContainKeys("RANK", "WORLD_SIZE", "LOCAL_RANK");

        // One GPU per node: wf train starts no launcher for --gpus 1, so the pod is the rank itself.
        var single = With(parameters, ("NNODES", "3"), ("GPUS_PER_NODE", "1"));
        var three = Enumerable.Range(0, 3).Select(i => $"{job.Metadata.Name}-{i}.{Service.Metadata.Name}").ToList();
        var alone = stubs.Run(job, single, index: 2, resolvable: three);
        alone.ExitCode.Should().Be(0, alone.Stderr);
        alone.Arguments.Should().ContainInConsecutiveOrder("--gpus", "1");
        alone.Environment.Should().Contain("RANK", "2").And.Contain("WORLD_SIZE", "3").And.Contain("LOCAL_RANK", "0");

        // A pod that never comes up: the others give up after TRAIN_START_TIMEOUT, naming it, and wf never starts.
        var impatient = With(parameters, ("TRAIN_START_TIMEOUT", "0"));
        var missing = stubs.Run(job, impatient, index: 0, resolvable: peers.Take(1).ToList());
        missing.ExitCode.Should().NotBe(0);
        missing.Stderr.Should().Contain($"pod 1 of {nodes} ({peers[1]}) was not running");
        missing.Arguments.Should().BeEmpty("wf train must not start before every pod runs");
    }

    [KubectlFact]
    public void Parameters_reach_the_job_and_service_through_kustomize()
    {
        var rendered = Render(Folder);
        var job = rendered.OfType<V1Job>().Single();
        var parameters = rendered.OfType<V1ConfigMap>().Single();
        var gpus = Parameter(parameters, "GPUS_PER_NODE");
        PodInvariants.Violations(job, PodRole.Trainer(gpus), placeholdersAllowed: false).Should().BeEmpty();
        job.Spec.Template.Spec.Containers[0].Image.Should().Contain("/", "the overlay points at a registry");
        rendered.OfType<V1Secret>().Should().BeEmpty();
        rendered.OfType<V1PersistentVolumeClaim>().Should().BeEmpty("the volume belongs to ./shared and outlives a run");

        // A copy with other sizes: every field follows params.yaml.
        var copy = Directory.CreateTempSubdirectory("wf-multinode-");
        try
        {
            foreach (var f in Directory.GetFiles(Folder)) File.Copy(f, Path.Combine(copy.FullName, Path.GetFileName(f)));
            var changed = With(Parameters, ("NNODES", "3"), ("GPUS_PER_NODE", "4"), ("MASTER_PORT", "29611"));
            File.WriteAllText(Path.Combine(copy.FullName, "params.yaml"), KubernetesYaml.Serialize(changed));

            var resized = Render(copy.FullName);
            var j = resized.OfType<V1Job>().Single();
            j.Spec.Parallelism.Should().Be(3);
            j.Spec.Completions.Should().Be(3);
            var resources = j.Spec.Template.Spec.Containers[0].Resources;
            resources.Requests[PodInvariants.GpuResource].ToDecimal().Should().Be(4);
            resources.Limits[PodInvariants.GpuResource].ToDecimal().Should().Be(4);
            var port = resized.OfType<V1Service>().Single().Spec.Ports.Single();
            port.Port.Should().Be(29611);
            port.TargetPort.Value.Should().Be("29611");
            PodInvariants.Violations(j, PodRole.Trainer(4), placeholdersAllowed: false).Should().BeEmpty();
        }
        finally
        {
            copy.Delete(recursive: true);
        }

        var shared = Render(SharedFolder);
        shared.OfType<V1PersistentVolumeClaim>().Single().Spec.AccessModes.Should().Contain("ReadWriteMany");
        PodInvariants.Violations(shared.OfType<V1Pod>().Single(), PodRole.SharedShell, placeholdersAllowed: false).Should().BeEmpty();
    }

    /// <summary>The parameters with some values changed.</summary>
    private static V1ConfigMap With(V1ConfigMap parameters, params (string Key, string Value)[] changes)
    {
        var data = new Dictionary<string, string>(parameters.Data);
        foreach (var (key, value) in changes) data[key] = value;
        return new V1ConfigMap { ApiVersion = parameters.ApiVersion, Kind = parameters.Kind, Metadata = parameters.Metadata, Data = data };
    }

    private static List<object> Render(string folder)
    {
        var rendered = Infra.Run(KubectlFactAttribute.Kubectl!, "kustomize", folder);
        rendered.ExitCode.Should().Be(0, $"kubectl kustomize {folder}: {rendered.Stderr}");
        return KubernetesYaml.LoadAllFromString(rendered.Stdout, null, true);
    }

    /// <summary>
    /// The environment the kubelet gives the training container of pod <paramref name="index"/>: the Job controller's
    /// JOB_COMPLETION_INDEX, then envFrom, then env in order, with $(VAR) references to earlier variables expanded
    /// and the two downward-API fields the Job controller fills (the completion index, the job-name label).
    /// </summary>
    private static Dictionary<string, string> PodEnvironment(V1Job job, V1ConfigMap parameters, int index)
    {
        var c = job.Spec.Template.Spec.Containers.Single();
        var env = new Dictionary<string, string>(StringComparer.Ordinal) { ["JOB_COMPLETION_INDEX"] = index.ToString(CultureInfo.InvariantCulture) };
        foreach (var source in c.EnvFrom ?? [])
        {
            source.ConfigMapRef.Name.Should().Be(parameters.Metadata.Name);
            foreach (var (key, value) in parameters.Data) env[key] = value;
        }
        foreach (var e in c.Env ?? [])
        {
            env[e.Name] = e.ValueFrom is null ? Expand(e.Value ?? "", env) : e.ValueFrom.FieldRef?.FieldPath switch
            {
                CompletionIndexField => index.ToString(CultureInfo.InvariantCulture),
                JobNameField => job.Metadata.Name,
                var other => throw new InvalidOperationException($"{e.Name}: the test does not know what the kubelet gives for {other ?? "this source"}"),
            };
        }
        return env;
    }

    /// <summary>
    /// Kubernetes' $(VAR) expansion of env values, command and args: $$ is a literal $, $(NAME) of a defined variable
    /// is its value, anything else (an undefined name, `$(date +%s)`, a lone $) stays as written.
    /// </summary>
    private static string Expand(string input, IReadOnlyDictionary<string, string> env)
    {
        var output = new StringBuilder();
        for (int i = 0; i < input.Length; i++)
        {
            if (input[i] != '$' || i + 1 == input.Length)
            {
                output.Append(input[i]);
            }
            else if (input[i + 1] == '$')
            {
                output.Append('$');
                i++;
            }
            else if (input[i + 1] == '(' && input.IndexOf(')', i + 2) is var close && close > 0)
            {
                var name = input[(i + 2)..close];
                output.Append(env.TryGetValue(name, out var value) ? value : input[i..(close + 1)]);
                i = close;
            }
            else
            {
                output.Append('$');
            }
        }
        return output.ToString();
    }

    private sealed record StartScriptRun(int ExitCode, string Stderr, List<string> Lookups, List<string> Arguments, Dictionary<string, string> Environment);

    /// <summary>A folder with stand-ins for `getent` (resolves the names it is given) and for wf (records its arguments and environment).</summary>
    private sealed class StartScriptStubs : IDisposable
    {
        private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("wf-start-script-");
        private string Bin => Path.Combine(dir.FullName, "bin");
        private string Wf => Path.Combine(Bin, "wf");

        public StartScriptStubs()
        {
            Directory.CreateDirectory(Bin);
            Write("getent", """
                #!/bin/sh
                # STUB_LATE: a pod whose name resolves only from its second lookup on (it was still starting).
                if [ "$2" = "${STUB_LATE-}" ] && ! grep -qx "$2" "$STUB_LOOKUPS" 2>/dev/null; then echo "$2" >> "$STUB_LOOKUPS"; exit 2; fi
                echo "$2" >> "$STUB_LOOKUPS"
                for name in $STUB_RESOLVABLE; do
                  if [ "$name" = "$2" ]; then echo "10.0.0.1 $2"; exit 0; fi
                done
                exit 2
                """);
            Write("wf", """
                #!/bin/sh
                for a in "$@"; do printf '%s\n' "$a"; done > "$STUB_ARGS"
                env > "$STUB_ENV"
                """);
        }

        private void Write(string name, string text)
        {
            if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("the start script runs under /bin/sh");
            var path = Path.Combine(Bin, name);
            File.WriteAllText(path, text.Replace("\r\n", "\n", StringComparison.Ordinal) + "\n");
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        public StartScriptRun Run(V1Job job, V1ConfigMap parameters, int index, IReadOnlyList<string> resolvable, string? late = null)
        {
            var c = job.Spec.Template.Spec.Containers[0];
            c.Command.Should().Equal("/bin/sh", "-c");
            var env = PodEnvironment(job, parameters, index);
            var script = Expand(c.Args.Should().ContainSingle().Subject, env);
            // The script starts the binary the image's entry point names; here, the stand-in.
            File.ReadAllText(Path.Combine(Infra.RepositoryRoot, "infra", "docker", "Dockerfile")).Should().Contain("ENTRYPOINT [\"/opt/wf/wf\"]");
            script.Should().Contain("exec /opt/wf/wf train");
            script = script.Replace("/opt/wf/wf", Wf, StringComparison.Ordinal);

            string lookups = Path.Combine(dir.FullName, "lookups"), args = Path.Combine(dir.FullName, "args"), envFile = Path.Combine(dir.FullName, "env");
            foreach (var f in new[] { lookups, args, envFile }) File.Delete(f);
            var start = new ProcessStartInfo(c.Command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(c.Command[1]);
            start.ArgumentList.Add(script);
            start.Environment.Clear();
            foreach (var (key, value) in env) start.Environment[key] = value;
            start.Environment["PATH"] = $"{Bin}:/usr/bin:/bin";
            start.Environment["STUB_RESOLVABLE"] = string.Join(' ', resolvable);
            start.Environment["STUB_LOOKUPS"] = lookups;
            if (late is not null) start.Environment["STUB_LATE"] = late;
            start.Environment["STUB_ARGS"] = args;
            start.Environment["STUB_ENV"] = envFile;
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("the start script ran over 30 s");
            }
            static List<string> Lines(string path) => File.Exists(path) ? File.ReadAllLines(path).ToList() : [];
            var recorded = Lines(envFile).Where(l => l.Contains('=', StringComparison.Ordinal))
                .Select(l => (Key: l[..l.IndexOf('=', StringComparison.Ordinal)], Value: l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]))
                .GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Last().Value);
            return new StartScriptRun(process.ExitCode, stdout.Result + stderr.Result, Lines(lookups), Lines(args), recorded);
        }

        public void Dispose() => dir.Delete(recursive: true);
    }
}
