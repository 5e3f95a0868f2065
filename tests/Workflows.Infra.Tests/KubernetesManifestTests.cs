using System.Text.RegularExpressions;
using k8s;
using k8s.Models;

namespace Workflows.Infra.Tests;

public class KubernetesManifestTests
{
    private static readonly List<object> Base = Infra.BaseObjects();
    private static V1Deployment Deployment(string name) => Base.OfType<V1Deployment>().Single(d => d.Metadata.Name == name);
    private static V1Deployment Worker => Deployment("wf-worker");
    private static V1Deployment GpuAgent => Deployment("wf-gpu-agent");

    [Fact]
    public void Every_manifest_parses_strictly_into_typed_kubernetes_objects()
    {
        var files = Infra.ManifestFiles().ToList();
        files.Should().NotBeEmpty();
        foreach (var f in files)
        {
            var objects = Infra.LoadObjects(f);
            objects.Should().NotBeEmpty($"{f} holds Kubernetes objects");
            objects.Should().AllSatisfy(o => o.Should().BeAssignableTo<IKubernetesObject>());
        }
        Base.Select(o => o.GetType().Name).Should().BeEquivalentTo(
            "V1Namespace", "V1ServiceAccount", "V1ConfigMap", "V1Deployment", "V1Deployment",
            "V2HorizontalPodAutoscaler", "V1PodDisruptionBudget");
    }

    [Fact]
    public void Worker_and_gpu_agent_pods_satisfy_every_invariant()
    {
        PodInvariants.Violations(Worker, expectsGpu: false).Should().BeEmpty();
        PodInvariants.Violations(GpuAgent, expectsGpu: true).Should().BeEmpty();
    }

    [Fact]
    public void The_invariants_catch_a_broken_pod()
    {
        // Same file, loaded again and broken in the ways the rules exist for: each must be reported.
        var broken = Infra.LoadObjects(Path.Combine(Infra.K8s, "base", "worker-deployment.yaml")).OfType<V1Deployment>().Single();
        var pod = broken.Spec.Template.Spec;
        var c = pod.Containers[0];
        pod.SecurityContext.RunAsNonRoot = null;
        c.SecurityContext.AllowPrivilegeEscalation = true;
        c.SecurityContext.ReadOnlyRootFilesystem = false;
        c.Resources.Limits.Remove("memory");
        c.LivenessProbe = null;
        c.Image = "example.azurecr.io/wf:latest";
        c.Env.Add(new V1EnvVar { Name = "WF_STORAGE_ACCOUNT_KEY", Value = "abc" });
        c.Resources.Limits[PodInvariants.GpuResource] = new ResourceQuantity("1");
        c.Resources.Requests[PodInvariants.GpuResource] = new ResourceQuantity("1");

        var v = PodInvariants.Violations(broken, expectsGpu: false);
        v.Should().Contain(x => x.Contains("runAsNonRoot", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("allowPrivilegeEscalation", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("root filesystem is writable", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("no memory limit", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("no liveness probe", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("latest tag", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("WF_STORAGE_ACCOUNT_KEY is inlined", StringComparison.Ordinal));
        v.Should().Contain(x => x.Contains("takes a GPU but is not a GPU pod", StringComparison.Ordinal));

        PodInvariants.Violations(Worker, expectsGpu: true).Should().Contain(x => x.Contains("does not tolerate the GPU taint", StringComparison.Ordinal));
        PodInvariants.ImageViolations("x", "registry.io/wf", placeholdersAllowed: true).Should().ContainSingle();
        PodInvariants.ImageViolations("x", "localhost:5000/wf", placeholdersAllowed: true).Should().ContainSingle("a registry port is not a tag");
        PodInvariants.ImageViolations("x", "registry.io/wf@sha256:0123", placeholdersAllowed: true).Should().BeEmpty();
    }

    [Fact]
    public void Storage_credentials_come_from_the_secret_and_the_secret_is_only_a_template()
    {
        var template = Infra.LoadObjects(Path.Combine(Infra.K8s, "base", "storage-secret.template.yaml")).OfType<V1Secret>().Single();
        foreach (var d in new[] { Worker, GpuAgent })
        {
            var env = d.Spec.Template.Spec.Containers[0].Env.Single(e => e.Name == "WF_STORAGE_CONNECTION_STRING");
            env.ValueFrom.SecretKeyRef.Name.Should().Be(template.Metadata.Name);
            template.StringData.Should().ContainKey(env.ValueFrom.SecretKeyRef.Key);
            d.Spec.Template.Spec.Containers[0].EnvFrom.Select(e => e.ConfigMapRef?.Name).Should().Contain("wf-config");
        }
        template.StringData.Values.Should().AllSatisfy(value =>
        {
            value.Should().NotContain("AccountKey=").And.NotContain("SharedAccessSignature=").And.StartWith("<");
        });
        template.Data.Should().BeNull("a template carries no base64 payload");

        var config = Base.OfType<V1ConfigMap>().Single();
        config.Data.Keys.Should().NotContain(k => PodInvariants.SecretLikeName().IsMatch(k));
        config.Data.Should().ContainKey("WF_TASK_HUB");
        config.Data.Values.Should().NotContain(x => x.Contains("AccountKey=", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void No_file_under_infra_holds_key_material()
    {
        var patterns = new[]
        {
            new Regex(@"AccountKey=[A-Za-z0-9+/]{20,}"),         // storage account key in a connection string
            new Regex(@"[?&]sig=[A-Za-z0-9%+/]{20,}"),          // SAS signature
            new Regex(@"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
            new Regex(@"DefaultEndpointsProtocol=https;AccountName=(?!ACCOUNT)"),
        };
        var files = Directory.EnumerateFiles(Path.Combine(Infra.RepositoryRoot, "infra"), "*", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Contains("node_modules"))
            .ToList();
        files.Should().Contain(f => f.EndsWith("storage-secret.template.yaml", StringComparison.Ordinal));
        foreach (var f in files)
        {
            var text = File.ReadAllText(f);
            patterns.Should().NotContain(p => p.IsMatch(text), $"{f} must not contain credentials");
        }
    }

    [Fact]
    public void Service_account_is_set_up_for_workload_identity()
    {
        var sa = Base.OfType<V1ServiceAccount>().Single();
        sa.Metadata.Annotations.Should().ContainKey("azure.workload.identity/client-id");
        Guid.TryParse(sa.Metadata.Annotations["azure.workload.identity/client-id"], out _).Should().BeTrue();
        sa.Metadata.Labels.Should().Contain(PodInvariants.WorkloadIdentityLabel, "true");
        sa.AutomountServiceAccountToken.Should().BeFalse();
        foreach (var d in new[] { Worker, GpuAgent })
        {
            d.Spec.Template.Spec.ServiceAccountName.Should().Be(sa.Metadata.Name);
            d.Metadata.NamespaceProperty.Should().Be(sa.Metadata.NamespaceProperty);
        }
    }

    [Fact]
    public void Namespace_enforces_the_restricted_pod_security_standard()
    {
        var ns = Base.OfType<V1Namespace>().Single();
        ns.Metadata.Labels.Should().Contain("pod-security.kubernetes.io/enforce", "restricted");
        Base.OfType<IMetadata<V1ObjectMeta>>().Where(o => o is not V1Namespace)
            .Should().AllSatisfy(o => o.Metadata.NamespaceProperty.Should().Be(ns.Metadata.Name));
    }

    [Fact]
    public void Workers_autoscale_on_cpu_and_keep_one_up_through_disruptions()
    {
        Worker.Spec.Replicas.Should().BeGreaterThanOrEqualTo(2);
        var hpa = Base.OfType<V2HorizontalPodAutoscaler>().Single();
        hpa.Spec.ScaleTargetRef.Kind.Should().Be("Deployment");
        hpa.Spec.ScaleTargetRef.Name.Should().Be(Worker.Metadata.Name);
        hpa.Spec.MinReplicas.Should().BeGreaterThanOrEqualTo(2);
        hpa.Spec.MaxReplicas.Should().BeGreaterThan(hpa.Spec.MinReplicas!.Value);
        hpa.Spec.Metrics.Should().Contain(m => m.Type == "Resource" && m.Resource.Name == "cpu");

        var pdb = Base.OfType<V1PodDisruptionBudget>().Single();
        bool Selects(V1Deployment d) => pdb.Spec.Selector.MatchLabels.All(l => d.Spec.Template.Metadata.Labels.TryGetValue(l.Key, out var v) && v == l.Value);
        Selects(Worker).Should().BeTrue();
        Selects(GpuAgent).Should().BeFalse("the PDB guards workers, not GPU agents");
        Worker.Spec.Selector.MatchLabels.Should().NotBeEquivalentTo(GpuAgent.Spec.Selector.MatchLabels);
    }

    [Fact]
    public void Kustomizations_list_existing_files_and_pin_every_image()
    {
        var baseKustomization = Kustomization.Load(Path.Combine(Infra.K8s, "base"));
        baseKustomization.Resources.Should().NotContain("storage-secret.template.yaml", "applying the template would overwrite the real secret");
        var placeholders = Base.OfType<V1Deployment>().SelectMany(d => d.Spec.Template.Spec.Containers).Select(c => c.Image).ToHashSet();
        placeholders.Should().BeEquivalentTo([PodInvariants.ImagePlaceholderWorker, PodInvariants.ImagePlaceholderGpu]);

        var overlays = Directory.GetDirectories(Path.Combine(Infra.K8s, "overlays"));
        overlays.Should().NotBeEmpty();
        foreach (var dir in overlays.Append(Path.Combine(Infra.K8s, "base")))
        {
            var k = Kustomization.Load(dir);
            foreach (var r in k.Resources.Concat(k.PatchPaths))
            {
                Path.Exists(Path.Combine(dir, r)).Should().BeTrue($"{dir}/kustomization.yaml refers to {r}");
            }
            if (dir.Contains("overlays", StringComparison.Ordinal))
            {
                foreach (var p in placeholders)
                {
                    k.Images.Should().ContainKey(p, $"{dir} must map the image placeholder");
                    var (newName, tag) = k.Images[p];
                    newName.Should().NotBeNullOrEmpty();
                    tag.Should().NotBeNullOrEmpty().And.NotBe("latest");
                }
            }
        }
    }

    [KubectlFact]
    public void Rendered_overlays_keep_the_invariants()
    {
        foreach (var dir in Directory.GetDirectories(Path.Combine(Infra.K8s, "overlays")).Order(StringComparer.Ordinal))
        {
            var rendered = Infra.Run(KubectlFactAttribute.Kubectl!, "kustomize", dir);
            rendered.ExitCode.Should().Be(0, $"kubectl kustomize {dir}: {rendered.Stderr}");
            var objects = KubernetesYaml.LoadAllFromString(rendered.Stdout, null, true);
            var deployments = objects.OfType<V1Deployment>().ToList();
            deployments.Should().HaveCount(2);
            foreach (var d in deployments)
            {
                var gpu = d.Metadata.Name == "wf-gpu-agent";
                PodInvariants.Violations(d, expectsGpu: gpu, placeholdersAllowed: false).Should().BeEmpty($"overlay {dir}");
                d.Spec.Template.Spec.Containers[0].Image.Should().Contain("/", "overlays point at a registry");
            }
            objects.OfType<V1Secret>().Should().BeEmpty("no overlay may ship a Secret; it is created with kubectl");
            var env = deployments.SelectMany(d => d.Spec.Template.Spec.Containers).SelectMany(c => c.Env ?? []).Select(e => e.Name).ToList();
            var config = objects.OfType<V1ConfigMap>().Single();
            if (Path.GetFileName(dir).Contains("workload-identity", StringComparison.Ordinal))
            {
                env.Should().NotContain("WF_STORAGE_CONNECTION_STRING", "identity-only pods hold no key");
                config.Data.Should().ContainKey("WF_STORAGE_ACCOUNT_URL");
            }
            else
            {
                env.Should().Contain("WF_STORAGE_CONNECTION_STRING");
            }
        }
    }
}

/// <summary>Runs only where kubectl (with its built-in kustomize) is installed; skipped with the reason otherwise.</summary>
public sealed class KubectlFactAttribute : FactAttribute
{
    public static string? Kubectl { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(d => Path.Combine(d, "kubectl"))
        .FirstOrDefault(File.Exists);

    public KubectlFactAttribute()
    {
        if (Kubectl is null)
        {
            Skip = "kubectl not on PATH: overlays not rendered (the base manifests and kustomization files are still checked)";
        }
    }
}

/// <summary>The parts of a kustomization.yaml the tests check.</summary>
public sealed record Kustomization(IReadOnlyList<string> Resources, IReadOnlyList<string> PatchPaths, IReadOnlyDictionary<string, (string? NewName, string? Tag)> Images)
{
    public static Kustomization Load(string directory)
    {
        var stream = new YamlDotNet.RepresentationModel.YamlStream();
        using (var reader = new StringReader(File.ReadAllText(Path.Combine(directory, "kustomization.yaml"))))
        {
            stream.Load(reader);
        }
        var root = (YamlDotNet.RepresentationModel.YamlMappingNode)stream.Documents[0].RootNode;
        IEnumerable<YamlDotNet.RepresentationModel.YamlNode> Seq(string key) =>
            root.Children.TryGetValue(new YamlDotNet.RepresentationModel.YamlScalarNode(key), out var n) ? ((YamlDotNet.RepresentationModel.YamlSequenceNode)n).Children : [];
        static string? Get(YamlDotNet.RepresentationModel.YamlNode node, string key) =>
            ((YamlDotNet.RepresentationModel.YamlMappingNode)node).Children.TryGetValue(new YamlDotNet.RepresentationModel.YamlScalarNode(key), out var v)
                ? ((YamlDotNet.RepresentationModel.YamlScalarNode)v).Value : null;
        return new Kustomization(
            Seq("resources").Select(n => ((YamlDotNet.RepresentationModel.YamlScalarNode)n).Value!).ToList(),
            Seq("patches").Select(n => Get(n, "path")).OfType<string>().ToList(),
            Seq("images").ToDictionary(n => Get(n, "name")!, n => (Get(n, "newName"), Get(n, "newTag") ?? Get(n, "digest"))));
    }
}
