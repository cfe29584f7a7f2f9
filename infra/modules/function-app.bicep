// The Flex Consumption plan and the function app that runs the `chat-sessions` custom handler,
// with App Service Authentication (Easy Auth) in front of every HTTP route.
param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string
@description('Client id of that identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string

param storageAccountName string
@description('URL of the blob container that holds the deployment package.')
param deploymentContainerUrl string
param blobEndpoint string
param queueEndpoint string
param applicationInsightsConnectionString string

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Origins whose pages may call the API from a browser: the site\'s CORS settings, answered by the platform before the handler. Empty = none.')
param corsAllowedOrigins array = []

@description('Application settings of the handler (merged over the platform settings below).')
param appSettings object = {}

param authClientId string
param authOpenIdIssuer string
param authAllowedAudiences array
param authAllowedClientApplications array = []
@description('Paths served without a token (e.g. /api/health).')
param authExcludedPaths array = []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is limited to some regions and fixed at creation; left off so the template deploys in any Flex region. Set properties.zoneRedundant for production in a region that supports it.
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
  // checkov:skip=CKV_AZURE_222: This is the public API of a browser frontend; every route except /api/health requires a Microsoft Entra token (App Service Authentication, Return401).
  // checkov:skip=CKV_AZURE_17: Callers are browsers authenticated with Entra bearer tokens; client (mTLS) certificates do not apply.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances itself (per-function scaling, scale to zero); siteConfig.numberOfWorkers is a dedicated-plan setting.
  // checkov:skip=CKV_AZURE_213: App Service health check evicts instances from a fixed worker pool (dedicated plans); Flex Consumption owns instance lifecycle and the Functions host already polls the handler. /api/health is served for external probes.
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
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // Bearer tokens, not cookies, cross origins, so credentials stay off (and '*' stays possible).
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // Custom handlers on Flex Consumption: runtime name `custom`, version `1.0`
      // (the FC1 entry of the `custom` Functions stack). FUNCTIONS_WORKER_RUNTIME must not be set.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: checkov only recognizes Easy Auth v1 (config authsettings with properties.enabled). Authentication is configured by the authsettingsV2 resource in this file (platform.enabled, requireAuthentication, Return401).
  // checkov:skip=CKV_AZURE_63: Rule for the web site config (siteConfig.httpLoggingEnabled) misapplied to this config resource; HTTP requests are logged to Application Insights by the Functions host.
  // checkov:skip=CKV_AZURE_65: Rule for the web site config (detailedErrorLoggingEnabled) misapplied to this config resource; Windows IIS detailed error pages do not exist on Linux Flex Consumption.
  // checkov:skip=CKV_AZURE_66: Rule for the web site config (requestTracingEnabled) misapplied to this config resource; IIS failed request tracing does not exist on Linux Flex Consumption.
  // checkov:skip=CKV_AZURE_80: Rule for the web site config (netFrameworkVersion) misapplied; the app is a Rust binary, not .NET.
  // checkov:skip=CKV_AZURE_88: Rule for the web site config (azureStorageAccounts mounts) misapplied; the app mounts no file shares.
  // checkov:skip=CKV_AZURE_222: Rule for the site (publicNetworkAccess) misapplied to this config resource; see the skip on the site.
  parent: site
  name: 'appsettings'
  properties: union(appSettings, {
    // Host storage and the chat-migration queue binding (connection "AzureWebJobsStorage")
    // through the managed identity; the account has no keys to use.
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__blobServiceUri: blobEndpoint
    AzureWebJobsStorage__queueServiceUri: queueEndpoint
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    AZURE_CLIENT_ID: identityClientId
  })
}

var aadValidation = union({
  allowedAudiences: authAllowedAudiences
}, empty(authAllowedClientApplications) ? {} : {
  defaultAuthorizationPolicy: {
    allowedApplications: authAllowedClientApplications
  }
})

// App Service Authentication: every request needs a valid Microsoft Entra bearer token
// (401 otherwise) except authExcludedPaths. The handler runs with AUTH_MODE=easyauth and takes the
// caller from the X-MS-CLIENT-PRINCIPAL* headers that this layer sets.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: checkov only recognizes Easy Auth v1 (config authsettings with properties.enabled). Authentication is configured by the authsettingsV2 resource in this file (platform.enabled, requireAuthentication, Return401).
  // checkov:skip=CKV_AZURE_63: Rule for the web site config (siteConfig.httpLoggingEnabled) misapplied to this config resource; HTTP requests are logged to Application Insights by the Functions host.
  // checkov:skip=CKV_AZURE_65: Rule for the web site config (detailedErrorLoggingEnabled) misapplied to this config resource; Windows IIS detailed error pages do not exist on Linux Flex Consumption.
  // checkov:skip=CKV_AZURE_66: Rule for the web site config (requestTracingEnabled) misapplied to this config resource; IIS failed request tracing does not exist on Linux Flex Consumption.
  // checkov:skip=CKV_AZURE_80: Rule for the web site config (netFrameworkVersion) misapplied; the app is a Rust binary, not .NET.
  // checkov:skip=CKV_AZURE_88: Rule for the web site config (azureStorageAccounts mounts) misapplied; the app mounts no file shares.
  // checkov:skip=CKV_AZURE_222: Rule for the site (publicNetworkAccess) misapplied to this config resource; see the skip on the site.
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: authExcludedPaths
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: authOpenIdIssuer
          clientId: authClientId
        }
        validation: aadValidation
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
  dependsOn: [
    settings
  ]
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
