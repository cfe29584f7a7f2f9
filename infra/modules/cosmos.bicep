// Azure Cosmos DB for NoSQL: account (Entra-only data access), database `chat`, the sessions
// container (one document per session, partitioned by user) and the legacy per-message container.
param accountName string
param location string
param tags object = {}

@allowed([
  'serverless'
  'autoscale'
])
param capacityMode string = 'serverless'
@minValue(1000)
param autoscaleMaxThroughput int = 1000

param databaseName string = 'chat'
param sessionsContainerName string = 'chat_sessions'
param legacyContainerName string = 'chat_messages'
@allowed([
  'create'
  'existing'
])
param legacyContainerMode string = 'create'
param legacyPartitionKeyPath string = '/session_id'

@description('The app identity: gets Cosmos DB Built-in Data Contributor on the account.')
param appPrincipalId string
@description('Optional operator (deploying user): gets Cosmos DB Built-in Data Contributor too, for inspection and local runs against the cloud account.')
param operatorPrincipalId string = ''

@description('Continuous backup (point-in-time restore), worth having before a migration that may delete the legacy documents. false = the periodic default.')
param continuousBackup bool = true
@allowed([
  'Continuous7Days'
  'Continuous30Days'
])
param continuousBackupTier string = 'Continuous7Days'

// Cosmos DB Built-in Data Contributor (data-plane SQL role, not an Azure RBAC role).
var dataContributorRoleDefinitionId = '00000000-0000-0000-0000-000000000002'
var serverless = capacityMode == 'serverless'

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  // checkov:skip=CKV_AZURE_101: The Flex Consumption app has no VNet integration in this template, so it reaches Cosmos DB over the public endpoint; local (key) auth is disabled and data access needs an Entra token with a Cosmos data-plane role. Add a private endpoint with VNet integration to close it.
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: serverless ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    enableAutomaticFailover: false
    enableMultipleWriteLocations: false
    backupPolicy: continuousBackup ? {
      type: 'Continuous'
      continuousModeProperties: {
        tier: continuousBackupTier
      }
    } : {
      type: 'Periodic'
      periodicModeProperties: {
        backupIntervalInMinutes: 240
        backupRetentionIntervalInHours: 8
        backupStorageRedundancy: 'Geo'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: serverless ? {} : {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    }
  }
}

// One document per chat session (messages embedded; oversized sessions spill sealed page
// documents into the same partition). Only what queries use is indexed: the message bodies and
// the free-form context are excluded, which keeps the write RU of an append low.
resource sessions 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: sessionsContainerName
  properties: {
    resource: {
      id: sessionsContainerName
      partitionKey: {
        paths: [
          '/user_id'
        ]
        kind: 'Hash'
        version: 2
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/messages/*'
          }
          {
            path: '/context/*'
          }
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
    options: {}
  }
}

// The legacy per-message documents (id, session_id, user_id, content, message_type, metadata,
// created_at) that the migration reads. `existing` only references a container that is already there.
resource legacyCreated 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = if (legacyContainerMode == 'create') {
  parent: database
  name: legacyContainerName
  properties: {
    resource: {
      id: legacyContainerName
      partitionKey: {
        paths: [
          legacyPartitionKeyPath
        ]
        kind: 'Hash'
        version: 2
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/content/?'
          }
          {
            path: '/metadata/*'
          }
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
    options: {}
  }
}

// Reference only: nothing is deployed for it. The app setting COSMOS_LEGACY_PARTITION_KEY must
// match this container's real partition key path (legacyPartitionKeyPath).
#disable-next-line no-unused-existing-resources
resource legacyExisting 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' existing = if (legacyContainerMode == 'existing') {
  parent: database
  name: legacyContainerName
}

resource appDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: account
  name: guid(account.id, appPrincipalId, dataContributorRoleDefinitionId)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributorRoleDefinitionId}'
    principalId: appPrincipalId
    scope: account.id
  }
}

resource operatorDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = if (!empty(operatorPrincipalId)) {
  parent: account
  name: guid(account.id, operatorPrincipalId, dataContributorRoleDefinitionId)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributorRoleDefinitionId}'
    principalId: operatorPrincipalId
    scope: account.id
  }
}

output accountName string = account.name
output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
output sessionsContainerName string = sessions.name
output legacyContainerName string = legacyContainerName
