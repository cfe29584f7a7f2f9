// Readiness watched from outside: an Application Insights standard availability test that calls
// GET /api/health/ready every 5 minutes from three regions, and an alert when two of them fail.
// Flex Consumption does not support the App Service health check (siteConfig.healthCheckPath), so
// this is how an operator learns that the app cannot reach its store (the 503's detail, recorded
// with each failed test result, names the cause). On a Premium or Dedicated plan, set
// siteConfig.healthCheckPath to '/api/health/ready' as well.
param name string
param location string
param tags object = {}
@description('Resource id of the Application Insights component that records the results.')
param applicationInsightsId string
@description('Base URL of the Function App, e.g. https://func-xyz.azurewebsites.net.')
param appUrl string
@description('Seconds between tests from each location: 300, 600 or 900.')
@allowed([
  300
  600
  900
])
param frequencySeconds int = 300

resource readiness 'Microsoft.Insights/webtests@2022-06-15' = {
  name: name
  location: location
  // The hidden link is what attaches the test to the Application Insights component.
  tags: union(tags, {
    'hidden-link:${applicationInsightsId}': 'Resource'
  })
  kind: 'standard'
  properties: {
    SyntheticMonitorId: name
    Name: 'Readiness: GET /api/health/ready'
    Description: '200 when the app reaches its Cosmos DB container; a 503 problem+json detail names the cause (identity, network, missing database or container).'
    Enabled: true
    Frequency: frequencySeconds
    Timeout: 30
    Kind: 'standard'
    RetryEnabled: true
    Locations: [
      {
        Id: 'us-va-ash-azr'
      }
      {
        Id: 'emea-nl-ams-azr'
      }
      {
        Id: 'apac-sg-sin-azr'
      }
    ]
    Request: {
      RequestUrl: '${appUrl}/api/health/ready'
      HttpVerb: 'GET'
      ParseDependentRequests: false
    }
    ValidationRules: {
      ExpectedHttpStatusCode: 200
      SSLCheck: true
      SSLCertRemainingLifetimeCheck: 7
    }
  }
}

resource notReady 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${name}-alert'
  location: 'global'
  tags: tags
  properties: {
    description: 'The app is not ready (GET /api/health/ready fails from 2 of 3 locations): see the failed availability results for the cause, and docs/deploy.md.'
    severity: 1
    enabled: true
    scopes: [
      readiness.id
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'
      webTestId: readiness.id
      componentId: applicationInsightsId
      failedLocationCount: 2
    }
  }
}

output webTestId string = readiness.id
