// Everything `azd up` creates, from an empty subscription: one resource group holding a Flex Consumption
// Function App (Linux, Python 3.11) run as one user-assigned identity, its storage account (no shared
// keys), a Key Vault (RBAC, purge protection) for the Entra app's client secret and the token-encryption
// key, and Application Insights (workspace-based, Entra-only ingestion) for OpenTelemetry.
// The Entra app registration is made by infra/hooks/entra_app.py (azure.yaml hooks; see docs/deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names every resource through a short hash.')
param environmentName string

@minLength(1)
@description('Region of every resource; one that offers Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Application (client) id of the multi-tenant app registration, made by the preprovision hook.')
param entraClientId string

@description('Where browsers reach the app; empty: the Function App\'s own https URL. Redirect URIs are built from it.')
param publicBaseUrl string = ''

@description('Comma-separated exact URLs a sign-in may return to (the frontend\'s pages).')
param allowedReturnUrls string = ''

@description('Most instances the Function App scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Object id of the person running azd: may write the secrets the postprovision hook puts in Key Vault.')
param principalId string = ''

@description('Principal type of principalId.')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
  }
}

module vault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
  }
}

module api 'app/function-app.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: 'func-api-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: vault.outputs.name
    clientSecretName: vault.outputs.clientSecretName
    tokenKeySecretName: vault.outputs.tokenKeySecretName
    entraClientId: entraClientId
    publicBaseUrl: publicBaseUrl
    allowedReturnUrls: allowedReturnUrls
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

// Names and URLs only: no key, connection string or secret is ever an output.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output PUBLIC_BASE_URL string = api.outputs.publicBaseUrl
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_KEY_VAULT_URL string = vault.outputs.uri
output CLIENT_SECRET_NAME string = vault.outputs.clientSecretName
output TOKEN_KEY_SECRET_NAME string = vault.outputs.tokenKeySecretName
