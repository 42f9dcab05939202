// The one user-assigned identity the Function App runs as: host storage, the code's tables and queue,
// Key Vault references and secrets, and Application Insights ingestion.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
