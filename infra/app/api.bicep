// The Function App on the Flex Consumption plan (FC1), Python 3.11, running as the user-assigned
// managed identity. App settings: identity-based host storage, Application Insights with Entra
// ingestion, and every non-local_only setting of shared/config.py SETTINGS (checked by
// tests/unit/test_consistency.py, which reads the `appSettings` object below). No keys, no
// connection strings with keys, no secrets. FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION
// are not app settings on Flex Consumption: the runtime is functionAppConfig.runtime.

@description('Function App name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Region.')
param location string

@description('Tags.')
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Storage account for host storage and the deployment container.')
param storageAccountName string

@description('Blob container that holds the deployed package.')
param deploymentContainerName string

@description('Application Insights component.')
param applicationInsightsName string

@description('Log Analytics workspace that receives the diagnostic settings.')
param logAnalyticsWorkspaceId string

@description('Integration subnet (static egress); empty: no virtual network integration.')
param subnetId string = ''

@allowed([
  512
  2048
  4096
])
@description('Instance memory (MB).')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Maximum instance count.')
param maximumInstanceCount int = 100

@description('Python version of the Functions runtime.')
param pythonVersion string = '3.11'

@description('KEY_VAULT_URI')
param keyVaultUri string

@allowed([
  'public'
  'usgov'
  'china'
])
@description('M365_CLOUD')
param m365Cloud string

@description('M365_CLIENT_ID')
param m365ClientId string

@minLength(1)
@description('RESERVED_IP_RANGES (comma-separated CIDR ranges; never empty in Azure).')
param reservedIpRanges string

@description('UPSTREAM_TIMEOUT_SECONDS')
param upstreamTimeoutSeconds int

@description('REVALIDATION_SCHEDULE')
param revalidationSchedule string

@description('REVALIDATION_MAX_AGE_HOURS')
param revalidationMaxAgeHours int

@description('REVALIDATION_SPREAD_MINUTES')
param revalidationSpreadMinutes int

@description('WEBHOOK_REPLAY_WINDOW_SECONDS')
param webhookReplayWindowSeconds int

@description('POOL_LEASE_SECONDS')
param poolLeaseSeconds int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
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
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    // Flex Consumption supports few siteConfig properties ("Flex Consumption plan deprecations" in
    // the Functions app settings reference); ftpsState has been rejected on Flex sites with
    // BadRequest. tests/unit/test_consistency.py FLEX_SITE_CONFIG lists what may stay here.
    siteConfig: {
      minTlsVersion: '1.2'
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
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// One entry per app setting. Keys are checked against shared/config.py SETTINGS (and a short list
// of host settings) by tests/unit/test_consistency.py: keep one `KEY: value` per line.
var appSettings = {
  // Host storage and the app's table/queue clients, identity-based (Settings.storage_*).
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Host settings: explicit service URIs so that the host also works outside the public cloud
  // (accountName alone implies *.core.windows.net).
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  // Host settings: telemetry. The connection string carries no usable key: the component has local
  // authentication disabled and only accepts Entra tokens of this identity.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // I/O-bound sync functions: as many worker threads as queue messages in flight (batchSize + newBatchThreshold).
  PYTHON_THREADPOOL_THREAD_COUNT: '24'
  // Application settings (shared/config.py SETTINGS, local_only=False).
  KEY_VAULT_URI: keyVaultUri
  M365_CLOUD: m365Cloud
  M365_CLIENT_ID: m365ClientId
  AZURE_CLIENT_ID: identityClientId
  RESERVED_IP_RANGES: reservedIpRanges
  UPSTREAM_TIMEOUT_SECONDS: string(upstreamTimeoutSeconds)
  REVALIDATION_SCHEDULE: revalidationSchedule
  REVALIDATION_MAX_AGE_HOURS: string(revalidationMaxAgeHours)
  REVALIDATION_SPREAD_MINUTES: string(revalidationSpreadMinutes)
  WEBHOOK_REPLAY_WINDOW_SECONDS: string(webhookReplayWindowSeconds)
  POOL_LEASE_SECONDS: string(poolLeaseSeconds)
  VALIDATION_DEADLINE_SECONDS: '25'
  APP_CERTIFICATE_SUBJECT: 'CN=m365-service-account-profiles'
  APP_CERTIFICATE_VALIDITY_MONTHS: '12'
  EXPLANATION_FIRST_LOOK_SECONDS: '60'
  EXPLANATION_MAX_WAIT_MINUTES: '30'
  HTTP_VALIDATION_THREAD_COUNT: '16'
  QUEUE_VALIDATION_THREAD_COUNT: '24'
  WEBHOOK_PORTALS: '' // the portal registry (portal=tenantId|tenantId;...): none until an operator adds one
  // Traces go to Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING above, Entra-authenticated
  // with this identity: Monitoring Metrics Publisher in rbac.bicep); no second, console export.
  OTEL_TRACES_EXPORTER: 'none'
}

resource functionAppSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: appSettings
}

resource functionAppDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
