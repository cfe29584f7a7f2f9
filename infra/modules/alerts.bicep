// Log alerts on the Application Insights component (queries in infra/queries/alert-*.kql, classic
// table names): Cosmos DB throttling (429 answers) over 5 minutes, and the request units the app
// spends in a rolling hour against a budget. An optional action group mails them; without one the
// alerts still fire and show in the portal (Monitor → Alerts). Nothing here needs an identity or a
// role: the alert service runs the queries itself.
param location string
param tags object = {}

@description('Prefix of the rule and action group names, e.g. the deployment\'s resource token.')
param namePrefix string

@description('Resource id of the Application Insights component the queries run against.')
param applicationInsightsId string

@minValue(0)
@description('Fire when Cosmos DB answers more than this many requests with 429 within 5 minutes (the sum of chat_sessions.cosmos.throttled).')
param throttledPer5Minutes int = 10

@minValue(1)
@description('Fire when the app spends more than this many request units on Cosmos DB within a rolling hour (the sum of azure.cosmosdb.client.operation.request_charge).')
param requestUnitsPerHour int = 1000000

@description('Email address that receives the alerts; empty = no action group.')
param alertEmail string = ''

var actionGroupName = 'ag-${namePrefix}'
var actionGroupIds = empty(alertEmail) ? [] : [
  resourceId('Microsoft.Insights/actionGroups', actionGroupName)
]

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    // At most 12 characters: the sender name of mails and texts.
    groupShortName: 'chatsessions'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource throttled 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'throttled-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'chat-sessions: Cosmos DB throttling (429)'
    description: 'Cosmos DB answered more than ${throttledPer5Minutes} requests with 429 within 5 minutes: the RU/s of the account are spent. The SDK retries them; requests answer 503 with Retry-After when the retries run out. See the workbook\'s throttling tiles, then raise the throughput (autoscale maximum) or find the function that spends it (docs/deploy.md, docs/capacity.md).'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../queries/alert-throttled.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'Throttled'
          operator: 'GreaterThan'
          threshold: throttledPer5Minutes
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
  dependsOn: [
    operators
  ]
}

resource budget 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'ru-budget-${namePrefix}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'chat-sessions: request units over the hourly budget'
    description: 'The app spent more than ${requestUnitsPerHour} request units on Cosmos DB within the last hour (every operation, CLI jobs included). See the workbook\'s RU tiles for the function and the operation that spent them, and docs/capacity.md for what the load should cost.'
    severity: 3
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../queries/alert-request-units.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'RequestUnits'
          operator: 'GreaterThan'
          threshold: requestUnitsPerHour
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
  dependsOn: [
    operators
  ]
}

output throttledAlertId string = throttled.id
output budgetAlertId string = budget.id
