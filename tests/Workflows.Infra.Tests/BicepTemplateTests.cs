using System.Text.Json.Nodes;
using k8s.Models;

namespace Workflows.Infra.Tests;

public class BicepTemplateTests
{
    [Fact]
    public void Main_template_builds_and_lints_without_a_warning()
    {
        var main = Path.Combine(Infra.Azure, "main.bicep");
        var outDir = Directory.CreateTempSubdirectory("wf-bicep-");
        try
        {
            var build = Infra.RunBicep("build", main, "--outdir", outDir.FullName);
            build.ExitCode.Should().Be(0, build.Stderr);
            (build.Stdout + build.Stderr).Should().NotContainAny([" : Error ", " : Warning "]);
            File.Exists(Path.Combine(outDir.FullName, "main.json")).Should().BeTrue();

            var lint = Infra.RunBicep("lint", main);
            lint.ExitCode.Should().Be(0, lint.Stderr);
            (lint.Stdout + lint.Stderr).Should().NotContainAny([" : Error ", " : Warning "]);
        }
        finally
        {
            outDir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Storage_is_TLS12_https_only_and_private_by_default()
    {
        var account = Infra.ResourcesOfType("Microsoft.Storage/storageAccounts").Single(r => r["kind"] is not null);
        var p = account["properties"]!;
        ((string)p["minimumTlsVersion"]!).Should().Be("TLS1_2");
        ((bool)p["supportsHttpsTrafficOnly"]!).Should().BeTrue();
        ((bool)p["allowCrossTenantReplication"]!).Should().BeFalse();
        ((string)account["kind"]!).Should().Be("StorageV2");
        ((string)p["allowBlobPublicAccess"]!).Should().Contain("publicReports", "only the reports switch opens public access");
        ((bool)Infra.ParameterDefault("publicReports")!).Should().BeFalse();
        ((bool)Infra.ParameterDefault("allowSharedKeyAccess")!).Should().BeTrue("wf needs a connection string until its managed-identity path exists");

        var containers = Infra.ResourcesOfType("Microsoft.Storage/storageAccounts/blobServices/containers").ToList();
        containers.Should().HaveCount(2);
        var access = containers.Select(c => (string)c["properties"]!["publicAccess"]!).ToList();
        access.Should().Contain("None");
        access.Where(a => a != "None").Should().ContainSingle().Which.Should().Contain("publicReports").And.Contain("'Blob'");
        ((string)Infra.ParameterDefault("artifactsContainerName")!).Should().Be("artifacts");
        ((string)Infra.ParameterDefault("reportsContainerName")!).Should().Be("reports");
    }

    [Fact]
    public void Lifecycle_rules_never_delete_a_published_artifact_by_age_alone()
    {
        // Published manifests point into their attempt folders, so any delete rule must be limited to blobs the
        // writer tagged as scratch.
        var policy = Infra.ResourcesOfType("Microsoft.Storage/storageAccounts/managementPolicies").Single();
        var rules = policy["properties"]!["policy"]!["rules"]!.AsArray().Select(r => r!.AsObject()).ToList();
        rules.Should().NotBeEmpty();
        foreach (var rule in rules)
        {
            var deletes = rule["definition"]!["actions"]!["baseBlob"]?["delete"] is not null;
            var tagged = rule["definition"]!["filters"]!["blobIndexMatch"] is JsonArray { Count: > 0 };
            if (deletes) tagged.Should().BeTrue($"rule {rule["name"]} deletes blobs, so it must be restricted to tagged scratch");
        }
        rules.Should().Contain(r => r["definition"]!["actions"]!["baseBlob"]!["tierToCool"] != null);
    }

    [Fact]
    public void Aks_has_oidc_workload_identity_and_a_tainted_gpu_pool_that_scales_to_zero()
    {
        var cluster = Infra.ResourcesOfType("Microsoft.ContainerService/managedClusters").Single();
        var p = cluster["properties"]!;
        ((bool)p["oidcIssuerProfile"]!["enabled"]!).Should().BeTrue();
        ((bool)p["securityProfile"]!["workloadIdentity"]!["enabled"]!).Should().BeTrue();
        ((bool)p["disableLocalAccounts"]!).Should().BeTrue();
        var pools = p["agentPoolProfiles"]!.AsArray().Select(x => x!.AsObject()).ToList();
        pools.Select(x => (string)x["name"]!).Should().BeEquivalentTo("system", "cpu", "gpu");
        pools.Single(x => (string)x["mode"]! == "System")["name"]!.ToString().Should().Be("system");
        var gpu = pools.Single(x => (string)x["name"]! == "gpu");
        ((bool)gpu["enableAutoScaling"]!).Should().BeTrue();
        gpu["nodeTaints"]!.ToJsonString().Should().Contain("gpuTaint");
        ((int)Infra.ParameterDefault("gpuMinCount")!).Should().Be(0);
        Infra.ParameterDefault("gpuVmSize")!.ToString().Should().MatchRegex("^Standard_(NC\\d+ads_A100_v4|ND96isr_H100_v5)$");
    }

    [Fact]
    public void Wf_identity_gets_only_blob_queue_and_table_data_roles_on_the_account()
    {
        var identityTemplate = Infra.ResourcesOfType("Microsoft.Resources/deployments").Single(d => (string)d["name"]! == "identity")["properties"]!["template"]!.ToJsonString();
        identityTemplate.Should().Contain("ba92f5b4-2d11-453d-a403-e96b0029c9fe", "Storage Blob Data Contributor")
            .And.Contain("974c5e8b-45b9-4653-ba55-5f855dd0fb88", "Storage Queue Data Contributor")
            .And.Contain("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "Storage Table Data Contributor");
        var all = Infra.Template.ToJsonString();
        foreach (var broad in new[] { "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c", "17d1049b-9a84-46fb-8f53-869881c3d3ab", "81a9662b-bebf-436f-a333-f67b29880f12" })
        {
            all.Should().NotContain(broad, "Owner, Contributor, Storage Account Contributor and Key Operator can read account keys");
        }
        var assignments = Infra.ResourcesOfType("Microsoft.Authorization/roleAssignments").Where(r => r.ToJsonString().Contains("Microsoft.Storage", StringComparison.Ordinal)).ToList();
        assignments.Should().ContainSingle().Which["scope"]!.ToString().Should().Contain("Microsoft.Storage/storageAccounts", "scoped to the account, not the resource group");

        var federation = Infra.ResourcesOfType("Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials").Single()["properties"]!;
        federation["subject"]!.ToString().Should().Contain("system:serviceaccount:");
        federation["audiences"]!.ToJsonString().Should().Contain("api://AzureADTokenExchange");
        federation["issuer"]!.ToString().Should().Contain("oidcIssuerUrl");

        foreach (var output in Infra.Template["outputs"]!.AsObject())
        {
            output.Value!.ToJsonString().Should().NotContainAny(["listKeys", "listAccountSas", "connectionString"], $"output {output.Key} must not carry a secret");
        }
    }

    [Fact]
    public void Manifests_agree_with_the_template_on_pools_taint_and_service_account()
    {
        var objects = Infra.BaseObjects();
        var worker = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "wf-worker").Spec.Template.Spec;
        var agent = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "wf-gpu-agent").Spec.Template.Spec;

        var poolKey = Infra.Variable("poolLabelKey");
        worker.NodeSelector.Should().Contain(poolKey, "cpu");
        agent.NodeSelector.Should().Contain(poolKey, "gpu");

        // "key=value:Effect", as AKS takes it
        var taint = Infra.Variable("gpuTaint");
        var key = taint[..taint.IndexOf('=', StringComparison.Ordinal)];
        var value = taint[(taint.IndexOf('=', StringComparison.Ordinal) + 1)..taint.IndexOf(':', StringComparison.Ordinal)];
        var effect = taint[(taint.IndexOf(':', StringComparison.Ordinal) + 1)..];
        agent.Tolerations.Should().Contain(t => t.Key == key && t.Effect == effect && (t.OperatorProperty == "Exists" || t.Value == value));

        var sa = objects.OfType<V1ServiceAccount>().Single();
        Infra.ParameterDefault("serviceAccountNamespace")!.ToString().Should().Be(sa.Metadata.NamespaceProperty);
        Infra.ParameterDefault("serviceAccountName")!.ToString().Should().Be(sa.Metadata.Name);

        var config = objects.OfType<V1ConfigMap>().Single();
        config.Data["WF_ARTIFACTS_CONTAINER"].Should().Be(Infra.ParameterDefault("artifactsContainerName")!.ToString());
        config.Data["WF_REPORTS_CONTAINER"].Should().Be(Infra.ParameterDefault("reportsContainerName")!.ToString());
    }

    [Fact]
    public void Dockerfile_images_run_as_the_uid_the_pods_require()
    {
        var lines = File.ReadAllLines(Path.Combine(Infra.RepositoryRoot, "infra", "docker", "Dockerfile"));
        var uid = Infra.BaseObjects().OfType<V1Deployment>().Select(d => d.Spec.Template.Spec.SecurityContext.RunAsUser).Distinct().Single();
        var stages = new Dictionary<string, List<string>>();
        List<string>? current = null;
        foreach (var line in lines.Select(l => l.Trim()))
        {
            if (line.StartsWith("FROM ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                parts[1].Should().Contain(":", "base images are pinned by tag").And.NotEndWith(":latest");
                stages[parts.Length >= 4 ? parts[3] : parts[1]] = current = [];
            }
            else
            {
                current?.Add(line);
            }
        }
        foreach (var target in new[] { "worker", "gpu-agent" })
        {
            stages.Should().ContainKey(target);
            stages[target].Last(l => l.StartsWith("USER ", StringComparison.Ordinal)).Should().Be($"USER {uid}:{uid}");
            stages[target].Should().Contain(l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal) && l.Contains("wf", StringComparison.Ordinal));
        }
        stages["gpu-agent"].Should().Contain(l => l.Contains("LD_LIBRARY_PATH=", StringComparison.Ordinal) && l.Contains("torch/lib", StringComparison.Ordinal));
    }
}
