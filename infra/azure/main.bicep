// wf on Azure: storage (artifacts, reports, DTFx task hub), AKS (system, cpu and gpu pools), a registry for the
// image, and a workload identity for the wf pods. Deploy into an existing resource group:
//   az deployment group create -g RG -f infra/azure/main.bicep -p clusterAdminPrincipalId=$(az ad signed-in-user show --query id -o tsv)
// See docs/deployment.md.
targetScope = 'resourceGroup'

@description('Region of every resource.')
param location string = resourceGroup().location

@description('Short prefix of resource names (lower-case letters and digits).')
@minLength(2)
@maxLength(8)
param prefix string = 'wf'

@description('Storage account name; the default is unique per resource group.')
@maxLength(24)
param storageAccountName string = toLower('${prefix}st${uniqueString(resourceGroup().id)}')

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_RAGRS'])
param storageSku string = 'Standard_ZRS'

@description('Allow account keys / connection strings. wf needs a connection string today (WF_STORAGE_CONNECTION_STRING); set false once wf authenticates with workload identity, which then becomes the only way in.')
param allowSharedKeyAccess bool = true

param artifactsContainerName string = 'artifacts'
param reportsContainerName string = 'reports'

@description('Make single report blobs (heatmaps) readable by URL without a SAS. Default private: see docs/deployment.md for the trade-off.')
param publicReports bool = false

@minValue(1)
param scratchRetentionDays int = 7
@minValue(1)
param coolAfterIdleDays int = 30
@minValue(1)
param softDeleteDays int = 7

param kubernetesVersion string = ''
param systemVmSize string = 'Standard_D4ds_v5'
param cpuVmSize string = 'Standard_D8ds_v5'
@minValue(1)
param cpuMinCount int = 1
@minValue(1)
param cpuMaxCount int = 10

@description('GPU node size. NC*ads_A100_v4: 1-4 A100 80GB per node; ND96isr_H100_v5: 8 H100 per node (one wf gpu-agent per GPU).')
@allowed([
  'Standard_NC24ads_A100_v4'
  'Standard_NC48ads_A100_v4'
  'Standard_NC96ads_A100_v4'
  'Standard_ND96isr_H100_v5'
])
param gpuVmSize string = 'Standard_NC24ads_A100_v4'
@minValue(0)
param gpuMinCount int = 0
@minValue(1)
param gpuMaxCount int = 4
@minValue(128)
param gpuOsDiskSizeGB int = 512

@description('Namespace and service account of the wf pods (infra/k8s/base); the federated credential trusts exactly this pair.')
param serviceAccountNamespace string = 'wf'
param serviceAccountName string = 'wf'

@description('Entra ID object id to make AKS cluster admin (Azure RBAC), usually yours. Empty: assign it yourself.')
param clusterAdminPrincipalId string = ''

@description('CIDRs allowed to reach the Kubernetes API server. Empty: any address (Entra ID sign-in still required).')
param apiServerAuthorizedIpRanges array = []

@description('Create a container registry for the wf image (pull rights go to the cluster).')
param createRegistry bool = true

param tags object = {
  app: 'wf'
}

// Pool selection contract with infra/k8s: workers select poolLabelKey=cpu, GPU agents poolLabelKey=gpu and
// tolerate gpuTaint. Tests check that the manifests agree with these values.
var poolLabelKey = 'workflows.io/pool'
var gpuTaint = 'nvidia.com/gpu=present:NoSchedule'
var suffix = uniqueString(resourceGroup().id)

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageAccountName
    location: location
    skuName: storageSku
    allowSharedKeyAccess: allowSharedKeyAccess
    artifactsContainerName: artifactsContainerName
    reportsContainerName: reportsContainerName
    publicReports: publicReports
    scratchRetentionDays: scratchRetentionDays
    coolAfterIdleDays: coolAfterIdleDays
    softDeleteDays: softDeleteDays
    tags: tags
  }
}

module aks 'modules/aks.bicep' = {
  name: 'aks'
  params: {
    name: '${prefix}-aks-${suffix}'
    location: location
    tags: tags
    kubernetesVersion: kubernetesVersion
    systemVmSize: systemVmSize
    cpuVmSize: cpuVmSize
    cpuMinCount: cpuMinCount
    cpuMaxCount: cpuMaxCount
    gpuVmSize: gpuVmSize
    gpuMinCount: gpuMinCount
    gpuMaxCount: gpuMaxCount
    gpuOsDiskSizeGB: gpuOsDiskSizeGB
    poolLabelKey: poolLabelKey
    gpuTaint: gpuTaint
    clusterAdminPrincipalId: clusterAdminPrincipalId
    apiServerAuthorizedIpRanges: apiServerAuthorizedIpRanges
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: '${prefix}-id-${suffix}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    oidcIssuerUrl: aks.outputs.oidcIssuerUrl
    serviceAccountNamespace: serviceAccountNamespace
    serviceAccountName: serviceAccountName
  }
}

module registry 'modules/registry.bicep' = if (createRegistry) {
  name: 'registry'
  params: {
    name: '${prefix}acr${suffix}'
    location: location
    tags: tags
    kubeletObjectId: aks.outputs.kubeletObjectId
  }
}

output storageAccountName string = storage.outputs.name
@description('WF_STORAGE_ACCOUNT_URL for the workload-identity overlay.')
output storageAccountUrl string = storage.outputs.blobEndpoint
output artifactsContainerName string = storage.outputs.artifactsContainerName
output reportsContainerName string = storage.outputs.reportsContainerName
@description('Base URL of report blobs; readable without a SAS only when publicReports is true.')
output reportsBaseUrl string = '${storage.outputs.blobEndpoint}${storage.outputs.reportsContainerName}/'
output aksName string = aks.outputs.name
output oidcIssuerUrl string = aks.outputs.oidcIssuerUrl
@description('Goes into the azure.workload.identity/client-id annotation of the wf service account.')
output workloadIdentityClientId string = identity.outputs.clientId
output tenantId string = tenant().tenantId
output registryLoginServer string = createRegistry ? registry!.outputs.loginServer : ''
output serviceAccountSubject string = 'system:serviceaccount:${serviceAccountNamespace}:${serviceAccountName}'
