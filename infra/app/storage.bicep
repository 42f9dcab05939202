// The app's storage account: the host's blobs (leases, timers, the deployment package), the notification
// queue and the tables. Reached only by identity: shared-key access is off, so no key works at all.
param name string
param location string
param tags object
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: without VNet integration (the quickstart's default) the app reaches storage publicly; only Entra identities are accepted
  // checkov:skip=CKV_AZURE_206: locally redundant, as in the quickstart; choose GRS where a region's loss must not lose tenant state
  // checkov:skip=CKV_AZURE_59: same: public network access stays on; blob public access and shared keys are off
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobServices 'blobServices' = {
    name: 'default'
    properties: {
      deleteRetentionPolicy: {
        enabled: true
        days: 7
      }
    }

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
      properties: {
        publicAccess: 'None'
      }
    }
  }
}

output name string = storage.name
output deploymentContainerName string = deploymentContainerName
