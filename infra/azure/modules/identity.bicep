// The identity wf pods run as: a user-assigned managed identity, federated with the Kubernetes service account
// (workload identity), with data-plane roles on the one storage account and nothing else.

param name string
param location string
param tags object

param storageAccountName string
param oidcIssuerUrl string
param serviceAccountNamespace string
param serviceAccountName string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

resource federation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: identity
  name: 'wf-${serviceAccountNamespace}-${serviceAccountName}'
  properties: {
    issuer: oidcIssuerUrl
    subject: 'system:serviceaccount:${serviceAccountNamespace}:${serviceAccountName}'
    audiences: ['api://AzureADTokenExchange']
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2024-01-01' existing = {
  name: storageAccountName
}

// Blob: artifacts, reports and DTFx lease blobs. Queue: DTFx control and work-item queues. Table: DTFx history and
// instance tables. Data roles only: the identity cannot read account keys or change the account.
var dataRoles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource roleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in items(dataRoles): {
    scope: storage
    name: guid(storage.id, identity.id, role.value)
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
      description: 'wf (${role.key})'
    }
  }
]

output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
output id string = identity.id
