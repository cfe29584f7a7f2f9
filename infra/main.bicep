// chat-sessions: one Azure Functions custom-handler app (Flex Consumption, Linux) in front of
// Azure Cosmos DB for NoSQL, reached with a user-assigned managed identity. No keys, no secrets:
// storage has shared-key access off, Cosmos has local auth off, Application Insights takes
// Entra-authenticated telemetry, callers are authenticated by App Service Authentication.
// Deploy with `azd provision` or `az deployment sub create` (see docs/deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME). Seeds the resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource. Must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person or pipeline running the deployment (azd: AZURE_PRINCIPAL_ID). Gets data-plane access to Cosmos DB and to the migration queue so they can run and watch migrations. Empty = none.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principal in principalId.')
param principalType string = 'User'

@description('Resource group to create; empty = rg-<environmentName>.')
param resourceGroupName string = ''

@minLength(1)
@description('Application (client) id of the Microsoft Entra app registration that represents this API for App Service Authentication. Required: the app trusts the identity headers that App Service Authentication sets, so it must never run without it.')
param authClientId string

@description('OpenID issuer for App Service Authentication; empty = https://login.microsoftonline.com/<this tenant>/v2.0.')
param authOpenIdIssuer string = ''

@description('Accepted token audiences; empty = [ api://<authClientId>, <authClientId> ].')
param authAllowedAudiences array = []

@description('Client application ids allowed to call the API (e.g. the frontend SPA registration); empty = any client application of the tenant that obtains a token for the audience.')
param authAllowedClientApplications array = []

@description('Let /api/health and /api/health/ready through without a token, for uptime checks and the readiness availability test. Liveness returns only {"status","store","store_state"}; readiness adds, when not ready, the cause in words (client id of the identity, database and container names; never a secret).')
param healthAnonymous bool = true

@allowed([
  'serverless'
  'autoscale'
])
@description('Cosmos DB capacity mode: serverless (pay per request, single region) or provisioned autoscale throughput shared by the database.')
param cosmosCapacityMode string = 'serverless'

@minValue(1000)
@description('Autoscale maximum RU/s of the database when cosmosCapacityMode is autoscale (scales between 10% and 100% of it).')
param cosmosAutoscaleMaxThroughput int = 1000

@description('Cosmos DB continuous backup (7-day point-in-time restore); false = periodic backups.')
param cosmosContinuousBackup bool = true

@description('Existing or new Cosmos DB account name; empty = cosmos-<token>. Point it at the account that holds the legacy container to migrate in place.')
param cosmosAccountName string = ''

@allowed([
  'create'
  'existing'
])
@description('The legacy per-message container: create an empty one, or reference one that already exists in the account.')
param legacyContainerMode string = 'create'

@description('Partition key path of the legacy container (COSMOS_LEGACY_PARTITION_KEY).')
param legacyPartitionKeyPath string = '/session_id'

@description('Whether the MigrationSweep timer runs (sets AzureWebJobs.MigrationSweep.Disabled and MIGRATION_SWEEP_ENABLED).')
param migrationSweepEnabled bool = false

@description('NCRONTAB schedule of the MigrationSweep timer (6 fields, UTC).')
param migrationSweepSchedule string = '0 0 3 * * *'

@description('Whether the RetentionSweep timer runs (sets AzureWebJobs.RetentionSweep.Disabled and RETENTION_SWEEP_ENABLED).')
param retentionSweepEnabled bool = false

@description('NCRONTAB schedule of the RetentionSweep timer (6 fields, UTC).')
param retentionSweepSchedule string = '0 30 3 * * *'

@minValue(0)
@maxValue(36500)
@description('Archive sessions untouched for this many days (RETENTION_ARCHIVE_AFTER_DAYS); 0 = off.')
param retentionArchiveAfterDays int = 0

@minValue(0)
@maxValue(36500)
@description('Delete sessions archived for this many days (RETENTION_DELETE_AFTER_DAYS); 0 = off.')
param retentionDeleteAfterDays int = 0

@description('Time budget in seconds of one migration invocation (below functionTimeout, 600 s).')
param migrationInvocationSeconds int = 240

@description('Origins (scheme://host[:port], exactly as browsers send them, e.g. https://chat.example.com) whose pages may call the API from a browser. The platform answers CORS for them before the request reaches the handler, so the app\'s own CORS_ALLOWED_ORIGINS stays unset in Azure. Empty = no cross-origin callers; the built-in web app (/api/ui/) is same-origin and needs none.')
param corsAllowedOrigins array = []

@description('Email address that receives the alerts (Cosmos DB throttling, request-unit budget) through an action group. Empty = no action group: the alerts still fire and show in the portal (Monitor → Alerts).')
param alertEmail string = ''

@minValue(0)
@description('Throttling alert: fire when Cosmos DB answers more than this many requests with 429 within 5 minutes (the sum of the metric chat_sessions.cosmos.throttled).')
param alertThrottledPer5Minutes int = 10

@minValue(1)
@description('Request-unit budget: fire when the app spends more than this many RU on Cosmos DB within a rolling hour (the sum of the metric azure.cosmosdb.client.operation.request_charge). 1,000,000 RU/h is 278 RU/s on average; docs/capacity.md estimates a deployment\'s.')
param alertRequestUnitsPerHour int = 1000000

@description('Put Azure API Management (Consumption tier) in front of the Function App, limiting each user\'s writes across every instance (modules/apim.bicep; docs/deploy.md#a-global-rate-limit-api-management). The app\'s own USER_WRITE_RATE holds per instance.')
param apimEnabled bool = false

@description('Publisher email API Management requires (when apimEnabled).')
param apimPublisherEmail string = ''

@minValue(1)
@description('Writes one user may send per minute through API Management, across every instance (when apimEnabled).')
param apimWritesPerMinute int = 1200

@description('RUST_LOG filter of the handler.')
param rustLog string = 'info'

@minValue(40)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory in MB.')
param instanceMemoryMB int = 2048

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${resourceToken}'
var openIdIssuer = !empty(authOpenIdIssuer) ? authOpenIdIssuer : '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
var allowedAudiences = !empty(authAllowedAudiences) ? authAllowedAudiences : [
  'api://${authClientId}'
  authClientId
]
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: [
      'chat-migration'
      'chat-migration-poison'
    ]
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
    operatorPrincipalType: principalType
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    accountName: !empty(cosmosAccountName) ? cosmosAccountName : 'cosmos-${resourceToken}'
    location: location
    tags: tags
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    continuousBackup: cosmosContinuousBackup
    databaseName: 'chat'
    sessionsContainerName: 'chat_sessions'
    legacyContainerName: 'chat_messages'
    legacyContainerMode: legacyContainerMode
    legacyPartitionKeyPath: legacyPartitionKeyPath
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    corsAllowedOrigins: corsAllowedOrigins
    appSettings: {
      AUTH_MODE: 'easyauth'
      RUST_LOG: rustLog
      MAX_BODY_BYTES: '1048576'
      COSMOS_ENDPOINT: cosmos.outputs.endpoint
      COSMOS_DATABASE: cosmos.outputs.databaseName
      COSMOS_SESSIONS_CONTAINER: cosmos.outputs.sessionsContainerName
      COSMOS_LEGACY_CONTAINER: cosmos.outputs.legacyContainerName
      COSMOS_LEGACY_PARTITION_KEY: legacyPartitionKeyPath
      MIGRATION_SWEEP_SCHEDULE: migrationSweepSchedule
      MIGRATION_SWEEP_ENABLED: migrationSweepEnabled ? 'true' : 'false'
      'AzureWebJobs.MigrationSweep.Disabled': migrationSweepEnabled ? 'false' : 'true'
      MIGRATION_INVOCATION_SECONDS: string(migrationInvocationSeconds)
      RETENTION_SWEEP_SCHEDULE: retentionSweepSchedule
      RETENTION_SWEEP_ENABLED: retentionSweepEnabled ? 'true' : 'false'
      'AzureWebJobs.RetentionSweep.Disabled': retentionSweepEnabled ? 'false' : 'true'
      RETENTION_ARCHIVE_AFTER_DAYS: retentionArchiveAfterDays > 0 ? string(retentionArchiveAfterDays) : ''
      RETENTION_DELETE_AFTER_DAYS: retentionDeleteAfterDays > 0 ? string(retentionDeleteAfterDays) : ''
    }
    authClientId: authClientId
    authOpenIdIssuer: openIdIssuer
    authAllowedAudiences: allowedAudiences
    authAllowedClientApplications: authAllowedClientApplications
    authExcludedPaths: healthAnonymous ? [
      '/api/health'
      '/api/health/ready'
    ] : []
  }
}

// Flex Consumption has no App Service health check (siteConfig.healthCheckPath); readiness is
// watched by an availability test instead. It needs the anonymous health paths.
module availability 'modules/availability.bicep' = if (healthAnonymous) {
  name: 'availability'
  scope: rg
  params: {
    name: 'ready-${resourceToken}'
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.id
    appUrl: functionApp.outputs.url
  }
}

// Optional: one write rate per user across every instance (docs/deploy.md).
module apim 'modules/apim.bicep' = if (apimEnabled) {
  name: 'apim'
  scope: rg
  params: {
    name: 'apim-${resourceToken}'
    location: location
    tags: tags
    appUrl: functionApp.outputs.url
    publisherEmail: apimPublisherEmail
    openIdIssuer: openIdIssuer
    audiences: allowedAudiences
    writesPerMinute: apimWritesPerMinute
  }
}

// What every request costs, and when to act: a workbook on the Application Insights component and
// log alerts on throttling and on an hourly request-unit budget (docs/deploy.md).
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    displayName: 'chat-sessions: request units, latency, throttling, errors (${environmentName})'
    applicationInsightsId: monitoring.outputs.id
    cosmosAccountId: cosmos.outputs.id
    sessionsContainerName: cosmos.outputs.sessionsContainerName
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: resourceToken
    applicationInsightsId: monitoring.outputs.id
    throttledPer5Minutes: alertThrottledPer5Minutes
    requestUnitsPerHour: alertRequestUnitsPerHour
    alertEmail: alertEmail
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output APIM_GATEWAY_URL string = apimEnabled ? apim.outputs.gatewayUrl : ''
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output MIGRATION_QUEUE_NAME string = 'chat-migration'
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_ACCOUNT_NAME string = cosmos.outputs.accountName
output COSMOS_DATABASE string = cosmos.outputs.databaseName
output COSMOS_SESSIONS_CONTAINER string = cosmos.outputs.sessionsContainerName
output COSMOS_LEGACY_CONTAINER string = cosmos.outputs.legacyContainerName
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.name
