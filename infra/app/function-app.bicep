// The Flex Consumption Function App (Linux, Python 3.11) and its plan. It runs as one user-assigned
// identity; every app setting is listed here, and it is exactly shared/config.py's DEPLOYED_SETTINGS
// (tests/deploy checks both ways). No key, connection string or secret value is in any setting: storage
// is reached by identity, secrets are Key Vault references resolved through the identity.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param keyVaultName string
param clientSecretName string
param tokenKeySecretName string
param entraClientId string
param publicBaseUrl string
param allowedReturnUrls string
param maximumInstanceCount int
param instanceMemoryMB int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is regional and costs two always-ready instances; opt in per region
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: Graph's change notifications and browsers present no client certificate
  // checkov:skip=CKV_AZURE_222: Graph's webhook and recruiters' browsers reach the app from the internet
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances itself; one is always ready for HTTP
  // checkov:skip=CKV_AZURE_213: Flex Consumption has no App Service health check; /api/health serves availability tests
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Key Vault references in the app settings resolve through the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Graph drops a notification that is not acknowledged within 3 seconds, so the webhook never waits
        // for a cold start: on Flex Consumption every HTTP function scales in the one 'http' group, so the
        // webhook's always-ready instance is that group's.
        alwaysReady: [
          {
            name: 'http'
            instanceCount: 1
          }
        ]
        // Invocations mostly wait on Graph: one instance serves up to 16 HTTP requests at once, on as many
        // worker threads (PYTHON_THREADPOOL_THREAD_COUNT), so a recruiter's concurrent queries share one
        // mailbox limiter instead of each instance discovering Graph's limit by 429.
        triggers: {
          http: {
            perInstanceConcurrency: 16
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

var appUrl = 'https://${site.properties.defaultHostName}'
var baseUrl = empty(publicBaseUrl) ? appUrl : publicBaseUrl

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: the app authenticates callers itself (function keys, sessions, clientState); Easy Auth would refuse Graph's webhook
  // checkov:skip=CKV_AZURE_17: Graph's change notifications and browsers present no client certificate
  // checkov:skip=CKV_AZURE_222: Graph's webhook and recruiters' browsers reach the app from the internet
  // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share
  // checkov:skip=CKV_AZURE_80: a Python app: no .NET Framework version applies
  // checkov:skip=CKV_AZURE_63: App Service HTTP logs do not exist on Flex Consumption; the host traces every request to Application Insights
  // checkov:skip=CKV_AZURE_65: detailed error pages do not exist on Flex Consumption; errors go to Application Insights
  // checkov:skip=CKV_AZURE_66: failed request tracing does not exist on Flex Consumption; failures are traced to Application Insights
  parent: site
  name: 'appsettings'
  properties: {
    // Host storage by identity (blobs for leases and timers, the queue trigger); the code's own table and
    // queue clients use the same identity and endpoints (shared/adapters/credentials.py).
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    // OpenTelemetry: the resource's connection string names it (not a credential: local auth is off);
    // ingestion authenticates as the identity.
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    PYTHON_ENABLE_OPENTELEMETRY: 'true'
    // The worker's threads for invocations (its default is the cores + 4); matches perInstanceConcurrency.
    PYTHON_THREADPOOL_THREAD_COUNT: '16'
    // Microsoft identity platform and Graph.
    AUTHORITY_HOST: 'https://login.microsoftonline.com'
    GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0'
    CLIENT_ID: entraClientId
    CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${clientSecretName}/)'
    PUBLIC_BASE_URL: baseUrl
    ALLOWED_RETURN_URLS: allowedReturnUrls
    // Token encryption: the key is a Key Vault secret the code reads with the identity (it rotates).
    KEY_VAULT_URL: vault.properties.vaultUri
    TOKEN_KEY_SECRET_NAME: tokenKeySecretName
    TABLE_PREFIX: ''
    SESSION_TTL_SECONDS: '28800'
    FLOW_TTL_SECONDS: '600'
    HTTP_TIMEOUT_SECONDS: '10'
    AVAILABILITY_DEADLINE_SECONDS: '20'
    NOTIFICATION_QUEUE: 'graph-notifications'
    NOTIFICATION_RETRY_SECONDS: '4'
    SUBSCRIPTION_MINUTES: '10080'
    BUSY_CACHE_ENABLED: 'true'
    BUSY_CACHE_FRESHNESS_SECONDS: '600'
    BUSY_CACHE_PAST_DAYS: '7'
    BUSY_CACHE_FUTURE_DAYS: '90'
    BUSY_CACHE_MAX_PEOPLE: '500'
    BUSY_CACHE_EVICT_DAYS: '14'
    PURGE_SCHEDULE: '0 */15 * * * *'
    RECOVERY_SCHEDULE: '0 */5 * * * *'
    RENEWAL_SCHEDULE: '0 0 */6 * * *'
    RECONCILE_SCHEDULE: '0 */30 * * * *'
    BUSY_CACHE_DELTA_SCHEDULE: '0 */5 * * * *'
    BUSY_CACHE_RESYNC_SCHEDULE: '0 30 3 * * *'
    EMAIL_SCHEDULE: '0 * * * * *'
    EMAIL_PER_MINUTE: '25'
    EMAIL_RECIPIENTS_PER_DAY: '9000'
    EMAIL_REMINDER_HOURS: '24'
  }
}

output name string = site.name
output uri string = appUrl
output publicBaseUrl string = baseUrl
