// Key Vault with RBAC authorization, soft delete and purge protection. It holds two secrets, both written
// by the postprovision hook (never by a template, so no secret value passes through a deployment):
// the Entra app's client secret and the token-encryption key (base64 of 32 random bytes).
param name string
param location string
param tags object

var clientSecretName = 'entra-client-secret'
var tokenKeySecretName = 'token-encryption-key'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: without VNet integration the app's Key Vault references arrive over the public endpoint; access is by RBAC only
  // checkov:skip=CKV_AZURE_189: same: the app and the deployer's postprovision hook reach the vault publicly, authorized by RBAC
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output clientSecretName string = clientSecretName
output tokenKeySecretName string = tokenKeySecretName
