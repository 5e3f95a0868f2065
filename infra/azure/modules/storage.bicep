// Storage account shared by the artifact store (blob) and the Durable Task Framework task hub (queues, tables,
// lease blobs). One account serves both, as in DESIGN.md.

@description('Storage account name: 3-24 lower-case letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

param location string

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_RAGRS'])
param skuName string

@description('Shared-key (account key, connection string, account SAS) access. wf authenticates with a connection string today, so this must stay true until its managed-identity code path exists.')
param allowSharedKeyAccess bool

@description('Container wf writes artifacts to (content-addressed outputs under cas/, run records under runs/).')
param artifactsContainerName string

@description('Container for report files (heatmap PNGs, report.md) that PR comments link to.')
param reportsContainerName string

@description('Anonymous read of single blobs (not listing) in the reports container, so PR comments can embed heatmaps by URL.')
param publicReports bool

@description('Days after which orphaned attempt blobs (tagged wf-scratch=true by their writer) are deleted.')
@minValue(1)
param scratchRetentionDays int

@description('Days without a read after which a content-addressed artifact moves to the cool tier (moved back to hot on the next read).')
@minValue(1)
param coolAfterIdleDays int

@description('Soft-delete window for blobs and containers: an accidental delete can be undone within it.')
@minValue(1)
@maxValue(365)
param softDeleteDays int

param tags object

resource account 'Microsoft.Storage/storageAccounts@2024-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: allowSharedKeyAccess
    // The portal and az CLI use Entra ID by default, so operators never need the key to browse.
    defaultToOAuthAuthentication: true
    // Account-level switch: required for the reports container to be public at all; every other container stays
    // private because its own publicAccess is None.
    allowBlobPublicAccess: publicReports
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: false
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        // Queues and tables hold the DTFx task hub state (orchestration history, work items).
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2024-01-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    // Needed by the "cool when idle" lifecycle rule (daysAfterLastAccessTimeGreaterThan).
    lastAccessTimeTrackingPolicy: {
      enable: true
      name: 'AccessTimeTracking'
      trackingGranularityInDays: 1
      blobType: ['blockBlob']
    }
  }
}

resource artifacts 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: artifactsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource reports 'Microsoft.Storage/storageAccounts/blobServices/containers@2024-01-01' = {
  parent: blobService
  name: reportsContainerName
  properties: {
    // 'Blob': a blob can be read by its exact URL, the container cannot be listed.
    publicAccess: publicReports ? 'Blob' : 'None'
  }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2024-01-01' = {
  parent: account
  name: 'default'
  dependsOn: [artifacts]
  properties: {
    policy: {
      rules: [
        {
          // A published manifest points INTO its attempt folder (cas/<activity>/<hash>/attempt-<id>/...), so a
          // prefix or age rule on attempt-* would delete live outputs. Only blobs their writer tagged as scratch
          // (and untagged before publishing) are deleted. Inert until wf tags attempt blobs: see docs/deployment.md.
          name: 'delete-orphaned-attempt-scratch'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: ['blockBlob']
              prefixMatch: ['${artifactsContainerName}/cas/']
              blobIndexMatch: [
                {
                  name: 'wf-scratch'
                  op: '=='
                  value: 'true'
                }
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: scratchRetentionDays
                }
              }
            }
          }
        }
        {
          // Checkpoints and old shards are large and rarely read again; cool storage costs about half. A read moves
          // the blob back to hot, so an experiment that reuses cached data prep pays the cool read price once.
          name: 'cool-idle-artifacts'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: ['blockBlob']
              prefixMatch: ['${artifactsContainerName}/cas/']
            }
            actions: {
              baseBlob: {
                enableAutoTierToHotFromCool: true
                tierToCool: {
                  daysAfterLastAccessTimeGreaterThan: coolAfterIdleDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
output artifactsContainerName string = artifacts.name
output reportsContainerName string = reports.name
