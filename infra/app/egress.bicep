// Static egress: a virtual network whose integration subnet (delegated to Microsoft.App/environments,
// as Flex Consumption requires) sends all outbound traffic through a NAT gateway with a public IP
// prefix. The prefix is what admins exclude from their access policies (RESERVED_IP_RANGES,
// spec Message 1), so the addresses the Validation Test signs in from are stable and known.

@description('Virtual network name.')
param virtualNetworkName string

@description('NAT gateway name.')
param natGatewayName string

@description('Public IP prefix name.')
param publicIpPrefixName string

@minValue(28)
@maxValue(31)
@description('Prefix length of the public IP prefix.')
param prefixLength int = 31

@description('Address space of the virtual network.')
param addressPrefix string = '10.40.0.0/16'

@description('Integration subnet of the Function App.')
param appSubnetPrefix string = '10.40.1.0/24'

@description('Region.')
param location string

@description('Tags.')
param tags object = {}

resource publicIpPrefix 'Microsoft.Network/publicIPPrefixes@2024-05-01' = {
  name: publicIpPrefixName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    prefixLength: prefixLength
    publicIPAddressVersion: 'IPv4'
  }
}

resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: natGatewayName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpPrefixes: [
      {
        id: publicIpPrefix.id
      }
    ]
  }
}

resource virtualNetwork 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: virtualNetworkName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

output subnetId string = virtualNetwork.properties.subnets[0].id
output ipPrefix string = publicIpPrefix.properties.ipPrefix
