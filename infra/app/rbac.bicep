// Role assignments: exactly what the application and the Functions host do, each on the one
// resource it is done to. The storage account is dedicated to this app (host storage plus the
// tables and queues of shared/names.py), so the data roles are scoped to it: the app creates its
// tables and queues on start (shared/bootstrap.py create_table_if_not_exists / create_queue), and
// creating a table is an account-level call (POST /Tables) that a table-scoped assignment may not
// cover.
//
// | role                           | scope                          | why                                                                 |
// |--------------------------------|--------------------------------|---------------------------------------------------------------------|
// | Storage Blob Data Owner        | storage account                | host storage (AzureWebJobsStorage): host locks/leases, timer         |
// |                                |                                | checkpoints, function keys; reads the Flex deployment package       |
// | Storage Table Data Contributor | storage account                | profiles, validations, jobs, pool leases, webhook replay guard      |
// | Storage Queue Data Contributor | storage account                | trigger reads/deletes, outcome and work messages are sent, the host |
// |                                |                                | moves exhausted messages to -poison                                 |
// | Key Vault Secrets Officer      | the vault                      | sets, reads, soft-deletes and recovers profile app passwords; reads |
// |                                |                                | webhook secrets (Secrets User could not write)                      |
// | Key Vault Certificates Officer | the vault                      | creates (non-exportable key) and imports app profiles' certificates,|
// |                                |                                | reads their public part, soft-deletes them                           |
// | Key Vault Crypto User          | the vault                      | signs app profiles' client assertions with the certificate's key    |
// |                                |                                | (the sign operation: the key is never read or exported)              |
// | Monitoring Metrics Publisher   | the Application Insights       | Entra-authenticated telemetry ingestion (local auth is disabled)    |
//
// Key Vault roles follow the Key Vault SDK clients that shared/ and functions/ construct
// (SecretClient -> Secrets Officer, CertificateClient -> Certificates Officer, CryptographyClient or
// KeyClient -> Crypto User); tests/unit/test_consistency.py checks both ways, and role ids against
// the Azure Verified Modules' table vendored in tests/data/azure-builtin-roles.json.
//
// Optionally the operator (deploying person or pipeline) gets Key Vault Secrets Officer on the
// vault to set the webhook secrets (main.bicep grantOperatorRole); it gets no data-plane access to
// storage.

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param principalId string

@description('Storage account of the app.')
param storageAccountName string

@description('Key Vault of the app.')
param keyVaultName string

@description('Application Insights component of the app.')
param applicationInsightsName string

@description('Optional object id of the operator; empty: none.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of principal in operatorPrincipalId.')
param operatorPrincipalType string = 'User'

// Built-in role definition ids (the same in every tenant and cloud).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  keyVaultCertificatesOfficer: 'a4417e6f-fecd-4de8-b567-7b0420556985'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource certificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCertificatesOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource cryptoUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultCryptoUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
