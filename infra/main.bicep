// Microsoft 365 service-account profiles: Azure Functions (Flex Consumption, Python 3.11) with
// Storage (tables, queues), Key Vault, a user-assigned managed identity and monitoring.
// Deployed by `azd up` (see infra/README.md). Every app setting comes from shared/config.py SETTINGS;
// tests/unit/test_consistency.py checks this template against the code.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('azd environment name; seeds the resource token and the azd-env-name tag.')
param environmentName string

@minLength(1)
// The public-cloud regions that offer Flex Consumption, as listed by the azd Flex Consumption
// quickstart (Azure-Samples/functions-quickstart-python-http-azd, read 2026-12-01; its early-access
// region eastus2euap left out). The live list: `az functionapp list-flexconsumption-locations`.
// A region added there (or a sovereign-cloud region) is one more line here and in
// tests/data/flex-consumption-regions.json (tests/unit/test_consistency.py compares the two).
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@description('Region of every resource: one that offers the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty gives rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the person or pipeline that operates this environment. azd fills AZURE_PRINCIPAL_ID in with the signed-in principal on every provision, so an empty value does not last: grantOperatorRole is the switch. Gets Key Vault Secrets Officer on the vault so that it can set webhook secrets; nothing else.')
param operatorPrincipalId string = ''

@description('Give operatorPrincipalId Key Vault Secrets Officer on the vault (GRANT_OPERATOR_ROLE, default true). false: no role for the operator.')
param grantOperatorRole bool = true

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('Kind of principal in operatorPrincipalId.')
param operatorPrincipalType string = 'User'

// ---------------------------------------------------------------------------------------------
// Application settings (shared/config.py SETTINGS; local_only settings never reach Azure)
// ---------------------------------------------------------------------------------------------

@allowed([
  'public'
  'usgov'
  'china'
])
@description('M365_CLOUD: the Microsoft cloud that the service accounts live in (shared/cloud.py). "local" is the simulator and is not deployable.')
param m365Cloud string = 'public'

@description('M365_CLIENT_ID: public client application id used for the modern (ROPC) sign-in of service accounts.')
param m365ClientId string = '1950a258-227b-4e31-a9cf-717495945fc2'

@description('RESERVED_IP_RANGES: comma-separated CIDR ranges the service signs in from, published to admins as the addresses to exclude from access policies. With enableStaticEgress the NAT gateway\'s public IP prefix is added in front of these.')
param reservedIpRanges string = ''

@description('Route all outbound traffic through a NAT gateway with a static public IP prefix (virtual network integration), so that the reserved IP ranges are real and stable.')
param enableStaticEgress bool = true

@minValue(28)
@maxValue(31)
@description('Size of the static egress public IP prefix (31 = 2 addresses).')
param egressPrefixLength int = 31

@minValue(1)
@maxValue(120)
@description('UPSTREAM_TIMEOUT_SECONDS: timeout of every call to Entra ID, SharePoint and Graph.')
param upstreamTimeoutSeconds int = 10

@minLength(11)
@description('REVALIDATION_SCHEDULE: NCRONTAB expression (6 fields) of the scheduled revalidation.')
param revalidationSchedule string = '0 0 2 * * *'

@minValue(0)
@description('REVALIDATION_MAX_AGE_HOURS: scheduled revalidation re-checks profiles last validated longer ago than this (0: all).')
param revalidationMaxAgeHours int = 24

@minValue(0)
@maxValue(1440)
@description('REVALIDATION_SPREAD_MINUTES: scheduled revalidation releases its work messages evenly over this many minutes.')
param revalidationSpreadMinutes int = 60

@minValue(1)
@description('WEBHOOK_REPLAY_WINDOW_SECONDS: accepted age of a signed webhook\'s timestamp.')
param webhookReplayWindowSeconds int = 300

@minValue(1)
@description('POOL_LEASE_SECONDS: default lease time of an account-pool member.')
param poolLeaseSeconds int = 300

// ---------------------------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------------------------

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB).')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Flex Consumption maximum instance count (scale-out limit).')
param maximumInstanceCount int = 100

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Storage account redundancy.')
param storageSkuName string = 'Standard_LRS'

@minValue(30)
@maxValue(730)
@description('Log Analytics retention (days).')
param logRetentionInDays int = 30

@minValue(7)
@maxValue(90)
@description('Key Vault soft-delete retention (days). Purge protection is always on.')
param keyVaultSoftDeleteRetentionInDays int = 90

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

// shared/names.py: TABLES and QUEUES, plus the poison queue the Functions host moves a message to
// after maxDequeueCount attempts (host.json). Created with the account, so that nothing waits for
// the app's first start to create them (tests/unit/test_consistency.py checks these lists).
var storageTables = [
  'Profiles'
  'Validations'
  'ValidationJobs'
  'PoolLeases'
  'WebhookEvents'
]
var storageQueues = [
  'validation-requests'
  'validation-requests-poison'
  'troubleshooting-outcomes'
  'troubleshooting-outcomes-poison'
  'outcome-explanations'
  'outcome-explanations-poison'
]

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    tableNames: storageTables
    queueNames: storageQueues
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
  }
}

module egress 'app/egress.bicep' = if (enableStaticEgress) {
  name: 'egress'
  scope: rg
  params: {
    virtualNetworkName: '${abbrs.networkVirtualNetworks}${resourceToken}'
    natGatewayName: '${abbrs.networkNatGateways}${resourceToken}'
    publicIpPrefixName: '${abbrs.networkPublicIPPrefixes}${resourceToken}'
    prefixLength: egressPrefixLength
    location: location
    tags: tags
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    operatorPrincipalId: grantOperatorRole ? operatorPrincipalId : ''
    operatorPrincipalType: operatorPrincipalType
  }
}

var egressRanges = enableStaticEgress ? egress!.outputs.ipPrefix : ''
var effectiveReservedIpRanges = join(filter([egressRanges, trim(reservedIpRanges)], r => !empty(r)), ',')

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    subnetId: enableStaticEgress ? egress!.outputs.subnetId : ''
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    keyVaultUri: keyVault.outputs.uri
    m365Cloud: m365Cloud
    m365ClientId: m365ClientId
    reservedIpRanges: effectiveReservedIpRanges
    upstreamTimeoutSeconds: upstreamTimeoutSeconds
    revalidationSchedule: revalidationSchedule
    revalidationMaxAgeHours: revalidationMaxAgeHours
    revalidationSpreadMinutes: revalidationSpreadMinutes
    webhookReplayWindowSeconds: webhookReplayWindowSeconds
    poolLeaseSeconds: poolLeaseSeconds
  }
  // The host starts as soon as the app exists: let it find its storage and vault roles in place.
  dependsOn: [
    rbac
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (azd writes them to .azure/<env>/.env)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_MANAGED_IDENTITY_NAME string = identity.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output EGRESS_IP_PREFIX string = egressRanges
output EFFECTIVE_RESERVED_IP_RANGES string = effectiveReservedIpRanges
