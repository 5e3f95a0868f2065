// AKS: a system pool, a CPU pool for `wf worker`, a GPU pool for `wf gpu-agent` that scales to zero.
// OIDC issuer + workload identity let pods get Entra ID tokens for the user-assigned identity (identity.bicep).

param name string
param location string
param tags object

@description('Kubernetes version; empty picks the region default.')
param kubernetesVersion string

param systemVmSize string

param cpuVmSize string
@minValue(1)
param cpuMinCount int
@minValue(1)
param cpuMaxCount int

@description('GPU VM size: one A100 80GB per NC*ads_A100_v4 node, eight H100 per ND96isr_H100_v5 node.')
param gpuVmSize string
@minValue(0)
param gpuMinCount int
@minValue(1)
param gpuMaxCount int
@minValue(128)
param gpuOsDiskSizeGB int

@description('Node label key the manifests select pools by (values cpu and gpu).')
param poolLabelKey string

@description('Taint on GPU nodes: only pods that tolerate it (the GPU agent) land there.')
param gpuTaint string

@description('Entra ID object id granted cluster admin through Azure RBAC (empty: none; assign it yourself).')
param clusterAdminPrincipalId string

@description('CIDRs allowed to reach the API server (empty: any).')
param apiServerAuthorizedIpRanges array

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Base'
    tier: 'Standard'
  }
  properties: {
    kubernetesVersion: empty(kubernetesVersion) ? null : kubernetesVersion
    dnsPrefix: name
    enableRBAC: true
    // Entra ID sign-in with Azure RBAC; no static admin kubeconfig that could leak.
    disableLocalAccounts: true
    aadProfile: {
      managed: true
      enableAzureRBAC: true
    }
    oidcIssuerProfile: {
      enabled: true
    }
    securityProfile: {
      workloadIdentity: {
        enabled: true
      }
    }
    apiServerAccessProfile: {
      authorizedIPRanges: apiServerAuthorizedIpRanges
    }
    autoUpgradeProfile: {
      upgradeChannel: 'patch'
      nodeOSUpgradeChannel: 'NodeImage'
    }
    networkProfile: {
      networkPlugin: 'azure'
      networkPluginMode: 'overlay'
      networkPolicy: 'cilium'
      networkDataplane: 'cilium'
      loadBalancerSku: 'standard'
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        vmSize: systemVmSize
        osType: 'Linux'
        osSKU: 'AzureLinux'
        count: 2
        minCount: 2
        maxCount: 3
        enableAutoScaling: true
        // Keep workloads off the system pool; they go to the cpu and gpu pools.
        nodeTaints: ['CriticalAddonsOnly=true:NoSchedule']
      }
      {
        name: 'cpu'
        mode: 'User'
        vmSize: cpuVmSize
        osType: 'Linux'
        osSKU: 'AzureLinux'
        count: cpuMinCount
        minCount: cpuMinCount
        maxCount: cpuMaxCount
        enableAutoScaling: true
        nodeLabels: {
          '${poolLabelKey}': 'cpu'
        }
      }
      {
        name: 'gpu'
        mode: 'User'
        vmSize: gpuVmSize
        osType: 'Linux'
        // Ubuntu: the GPU driver AKS installs is supported on it for both A100 and H100 sizes.
        osSKU: 'Ubuntu'
        osDiskSizeGB: gpuOsDiskSizeGB
        count: gpuMinCount
        minCount: gpuMinCount
        maxCount: gpuMaxCount
        // Min 0: no GPU node (and no GPU bill) until a GPU agent pod is pending.
        enableAutoScaling: true
        nodeLabels: {
          '${poolLabelKey}': 'gpu'
        }
        nodeTaints: [gpuTaint]
      }
    ]
  }
}

var aksRbacClusterAdminRoleId = 'b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b'

resource clusterAdmin 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(clusterAdminPrincipalId)) {
  scope: cluster
  name: guid(cluster.id, clusterAdminPrincipalId, aksRbacClusterAdminRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksRbacClusterAdminRoleId)
    principalId: clusterAdminPrincipalId
  }
}

output name string = cluster.name
output oidcIssuerUrl string = cluster.properties.oidcIssuerProfile.issuerURL
output kubeletObjectId string = cluster.properties.identityProfile.kubeletidentity.objectId
