// The user-assigned managed identity the Function App runs as: host storage, the app's own table
// and queue clients, Key Vault and Application Insights ingestion all authenticate with it
// (AZURE_CLIENT_ID / AzureWebJobsStorage__clientId). Its roles are granted in rbac.bicep.

@description('Identity name.')
param name string

@description('Region.')
param location string

@description('Tags.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
