using System.Text.RegularExpressions;
using k8s.Models;

namespace Workflows.Infra.Tests;

/// <summary>
/// The deployment security and operability rules (issue 8, parts 4 and 5) as one function over a pod template, so the
/// same rules run on the base manifests, on rendered overlays and on deliberately broken copies (to prove they fail).
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

    public static List<string> Violations(V1Deployment deployment, bool expectsGpu, bool placeholdersAllowed = true)
    {
        var v = new List<string>();
        var name = deployment.Metadata.Name;
        var pod = deployment.Spec.Template.Spec;
        var podSecurity = pod.SecurityContext;
        if (podSecurity?.RunAsNonRoot != true) v.Add($"{name}: pod runAsNonRoot is not true");
        if (podSecurity?.RunAsUser is null or 0) v.Add($"{name}: pod runAsUser is not a non-zero uid");
        if (podSecurity?.SeccompProfile?.Type != "RuntimeDefault") v.Add($"{name}: pod seccomp profile is not RuntimeDefault");
        if (pod.HostNetwork == true || pod.HostPID == true || pod.HostIPC == true) v.Add($"{name}: uses host namespaces");
        if (pod.AutomountServiceAccountToken != false) v.Add($"{name}: mounts a Kubernetes API token it does not need");
        if (string.IsNullOrEmpty(pod.ServiceAccountName) || pod.ServiceAccountName == "default") v.Add($"{name}: no dedicated service account");
        if (deployment.Spec.Template.Metadata?.Labels?.TryGetValue(WorkloadIdentityLabel, out var wi) != true || wi != "true")
            v.Add($"{name}: pod template lacks label {WorkloadIdentityLabel}=true");
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
            if (c.LivenessProbe is null) v.Add($"{id}: no liveness probe");
            if (c.ReadinessProbe is null) v.Add($"{id}: no readiness probe");

            var gpuRequest = requests.TryGetValue(GpuResource, out var gr) ? gr.ToDecimal() : 0;
            var gpuLimit = limits.TryGetValue(GpuResource, out var gl) ? gl.ToDecimal() : 0;
            if (expectsGpu && (gpuLimit != 1 || gpuRequest != gpuLimit)) v.Add($"{id}: GPU agent must request exactly one {GpuResource} (requests = limits = 1)");
            if (!expectsGpu && (gpuLimit != 0 || gpuRequest != 0)) v.Add($"{id}: takes a GPU but is not the GPU agent");

            v.AddRange(ImageViolations(id, c.Image, placeholdersAllowed));

            foreach (var e in c.Env ?? [])
            {
                if (e.Value is not null && SecretLikeName().IsMatch(e.Name)) v.Add($"{id}: {e.Name} is inlined; reference a Secret");
                if (e.Name == "WF_STORAGE_CONNECTION_STRING" && e.ValueFrom?.SecretKeyRef is null) v.Add($"{id}: WF_STORAGE_CONNECTION_STRING is not from a secretKeyRef");
            }
        }

        var tolerated = pod.Tolerations?.Any(t => t.Key == GpuResource && t.Effect == "NoSchedule") == true;
        if (expectsGpu && !tolerated) v.Add($"{name}: does not tolerate the GPU taint");
        if (!expectsGpu && tolerated) v.Add($"{name}: tolerates the GPU taint (would take GPU nodes)");
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
