using System.Text.RegularExpressions;
using k8s.Models;

namespace Workflows.Infra.Tests;

/// <summary>
/// The deployment security and operability rules (issue 8, parts 4 and 5) as one function over a pod template, so the
/// same rules run on the base manifests, on rendered overlays, on the multi-node training pods (issue 13) and on
/// deliberately broken copies (to prove they fail). What differs between pods is said by their <see cref="PodRole"/>.
/// </summary>
public static partial class PodInvariants
{
    public const string GpuResource = "nvidia.com/gpu";
    public const string WorkloadIdentityLabel = "azure.workload.identity/use";
    public const string ImagePlaceholderWorker = "wf";
    public const string ImagePlaceholderGpu = "wf-gpu";

    /// <summary>Env var names that must never carry a literal value: only secretKeyRef may feed them.</summary>
    [GeneratedRegex("(CONNECTION_STRING|ACCOUNT_KEY|SAS|TOKEN|PASSWORD|SECRET|CLIENT_SECRET|_KEY$)", RegexOptions.IgnoreCase)]
    public static partial Regex SecretLikeName();

    public static List<string> Violations(V1Deployment deployment, bool expectsGpu, bool placeholdersAllowed = true) =>
        Violations(deployment.Metadata.Name, deployment.Spec.Template, expectsGpu ? PodRole.GpuAgent : PodRole.Worker, placeholdersAllowed);

    public static List<string> Violations(V1Job job, PodRole role, bool placeholdersAllowed = true) =>
        Violations(job.Metadata.Name, job.Spec.Template, role, placeholdersAllowed);

    public static List<string> Violations(V1Pod pod, PodRole role, bool placeholdersAllowed = true) =>
        Violations(pod.Metadata.Name, new V1PodTemplateSpec { Metadata = pod.Metadata, Spec = pod.Spec }, role, placeholdersAllowed);

    public static List<string> Violations(string name, V1PodTemplateSpec template, PodRole role, bool placeholdersAllowed = true)
    {
        var v = new List<string>();
        var pod = template.Spec;
        var podSecurity = pod.SecurityContext;
        if (podSecurity?.RunAsNonRoot != true) v.Add($"{name}: pod runAsNonRoot is not true");
        if (podSecurity?.RunAsUser is null or 0) v.Add($"{name}: pod runAsUser is not a non-zero uid");
        if (podSecurity?.SeccompProfile?.Type != "RuntimeDefault") v.Add($"{name}: pod seccomp profile is not RuntimeDefault");
        if (pod.HostNetwork == true || pod.HostPID == true || pod.HostIPC == true) v.Add($"{name}: uses host namespaces");
        if (pod.AutomountServiceAccountToken != false) v.Add($"{name}: mounts a Kubernetes API token it does not need");
        if (string.IsNullOrEmpty(pod.ServiceAccountName) || pod.ServiceAccountName == "default") v.Add($"{name}: no dedicated service account");
        var identityLabel = template.Metadata?.Labels?.TryGetValue(WorkloadIdentityLabel, out var wi) == true && wi == "true";
        if (role.AzureIdentity && !identityLabel) v.Add($"{name}: pod template lacks label {WorkloadIdentityLabel}=true");
        if (!role.AzureIdentity && identityLabel) v.Add($"{name}: has label {WorkloadIdentityLabel}=true but talks to no Azure service (it would get a token for nothing)");
        if (pod.TerminationGracePeriodSeconds is null or < 60) v.Add($"{name}: terminationGracePeriodSeconds < 60 (no time for a graceful SIGTERM handoff)");
        if (pod.Volumes?.Any(x => x.HostPath is not null) == true) v.Add($"{name}: mounts a hostPath");

        foreach (var c in pod.Containers.Concat(pod.InitContainers ?? []))
        {
            var id = $"{name}/{c.Name}";
            var s = c.SecurityContext;
            if (s?.AllowPrivilegeEscalation != false) v.Add($"{id}: allowPrivilegeEscalation is not false");
            if (s?.Privileged == true) v.Add($"{id}: privileged");
            if (s?.ReadOnlyRootFilesystem != true) v.Add($"{id}: root filesystem is writable");
            if (s?.Capabilities?.Drop?.Contains("ALL") != true) v.Add($"{id}: capabilities not dropped (drop: [ALL])");
            if (s?.Capabilities?.Add is { Count: > 0 }) v.Add($"{id}: adds capabilities");
            if (s?.RunAsUser == 0 || s?.RunAsNonRoot == false) v.Add($"{id}: runs as root");

            // A read-only root needs writable scratch: /tmp from an emptyDir.
            var tmp = c.VolumeMounts?.FirstOrDefault(m => m.MountPath == "/tmp");
            if (tmp is null || pod.Volumes?.FirstOrDefault(x => x.Name == tmp.Name)?.EmptyDir is null)
                v.Add($"{id}: /tmp is not an emptyDir mount");

            var requests = c.Resources?.Requests ?? new Dictionary<string, ResourceQuantity>();
            var limits = c.Resources?.Limits ?? new Dictionary<string, ResourceQuantity>();
            foreach (var r in new[] { "cpu", "memory" })
            {
                if (!requests.ContainsKey(r)) v.Add($"{id}: no {r} request");
                if (!limits.ContainsKey(r)) v.Add($"{id}: no {r} limit");
                if (requests.TryGetValue(r, out var q) && limits.TryGetValue(r, out var l) && l.ToDecimal() < q.ToDecimal())
                    v.Add($"{id}: {r} limit below its request");
            }
            if (role.HeartbeatProbes && c.LivenessProbe is null) v.Add($"{id}: no liveness probe");
            if (role.HeartbeatProbes && c.ReadinessProbe is null) v.Add($"{id}: no readiness probe");

            var gpuRequest = requests.TryGetValue(GpuResource, out var gr) ? gr.ToDecimal() : 0;
            var gpuLimit = limits.TryGetValue(GpuResource, out var gl) ? gl.ToDecimal() : 0;
            if (role.Gpus > 0 && (gpuLimit != role.Gpus || gpuRequest != gpuLimit)) v.Add($"{id}: must request exactly {role.Gpus} {GpuResource} (requests = limits = {role.Gpus})");
            if (role.Gpus == 0 && (gpuLimit != 0 || gpuRequest != 0)) v.Add($"{id}: takes a GPU but is not a GPU pod");

            v.AddRange(ImageViolations(id, c.Image, placeholdersAllowed));

            foreach (var e in c.Env ?? [])
            {
                if (e.Value is not null && SecretLikeName().IsMatch(e.Name)) v.Add($"{id}: {e.Name} is inlined; reference a Secret");
                if (e.Name == "WF_STORAGE_CONNECTION_STRING" && e.ValueFrom?.SecretKeyRef is null) v.Add($"{id}: WF_STORAGE_CONNECTION_STRING is not from a secretKeyRef");
                if (!role.AzureIdentity && e.ValueFrom?.SecretKeyRef is not null) v.Add($"{id}: {e.Name} reads Secret {e.ValueFrom.SecretKeyRef.Name}, but this pod needs no credential");
            }
            foreach (var source in c.EnvFrom ?? [])
            {
                if (source.SecretRef is not null) v.Add($"{id}: takes its environment from Secret {source.SecretRef.Name}; reference single keys, and only where needed");
            }
        }

        var tolerated = pod.Tolerations?.Any(t => t.Key == GpuResource && t.Effect == "NoSchedule") == true;
        if (role.Gpus > 0 && !tolerated) v.Add($"{name}: does not tolerate the GPU taint");
        if (role.Gpus == 0 && tolerated) v.Add($"{name}: tolerates the GPU taint (would take GPU nodes)");
        if (pod.NodeSelector is null || pod.NodeSelector.Count == 0) v.Add($"{name}: no nodeSelector for its pool");
        return v;
    }

    /// <summary>
    /// An image is the kustomize placeholder (base only; overlays map it) or a reference pinned by tag or digest that
    /// is not "latest".
    /// </summary>
    public static IEnumerable<string> ImageViolations(string id, string? image, bool placeholdersAllowed)
    {
        if (string.IsNullOrWhiteSpace(image))
        {
            yield return $"{id}: no image";
            yield break;
        }
        if (image is ImagePlaceholderWorker or ImagePlaceholderGpu)
        {
            if (!placeholdersAllowed) yield return $"{id}: image placeholder '{image}' was not replaced";
            yield break;
        }
        if (image.Contains('@', StringComparison.Ordinal)) yield break; // pinned by digest
        var lastSegment = image[(image.LastIndexOf('/') + 1)..];
        var colon = lastSegment.LastIndexOf(':');
        if (colon < 0) yield return $"{id}: image '{image}' has no tag (means latest)";
        else if (lastSegment[(colon + 1)..] == "latest") yield return $"{id}: image '{image}' uses the latest tag";
    }
}

/// <summary>What a pod is for, which decides the rules that differ between wf's pods.</summary>
/// <param name="Gpus">The <c>nvidia.com/gpu</c> every container requests (requests = limits), with the GPU toleration; 0: no GPU and no toleration.</param>
/// <param name="HeartbeatProbes">A long-running wf process that writes the heartbeat file (worker, GPU agent): liveness and readiness probes required.</param>
/// <param name="AzureIdentity">Talks to Azure Storage, so carries the workload-identity label; a pod that does not must not read any Secret either.</param>
public sealed record PodRole(int Gpus, bool HeartbeatProbes, bool AzureIdentity)
{
    public static PodRole Worker { get; } = new(0, HeartbeatProbes: true, AzureIdentity: true);
    public static PodRole GpuAgent { get; } = new(1, HeartbeatProbes: true, AzureIdentity: true);

    /// <summary>A multi-node training pod: its node's GPUs, no heartbeat (batch), only the shared volume.</summary>
    public static PodRole Trainer(int gpus) => new(gpus, HeartbeatProbes: false, AzureIdentity: false);

    /// <summary>The shared volume's shell pod: no GPU, no heartbeat, only the shared volume.</summary>
    public static PodRole SharedShell { get; } = new(0, HeartbeatProbes: false, AzureIdentity: false);
}
