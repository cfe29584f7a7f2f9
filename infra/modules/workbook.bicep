// An Azure Monitor workbook on the Application Insights component: what every function costs in
// Cosmos DB request units, how long it takes, throttling, and errors; beside them what Azure
// Monitor's own Cosmos DB metrics say (billed request units, 429s, storage). The KQL lives in
// infra/queries/*.kql (checked by scripts/check-infra.sh) and uses the component's classic table
// names (requests, dependencies, customMetrics): the workbook's queries run against the component.
param location string
param tags object = {}

@description('Name shown in the portal (Monitor → Workbooks, and the component\'s Workbooks blade).')
param displayName string

@description('Resource id of the Application Insights component the queries run against.')
param applicationInsightsId string

@description('Resource id of the Cosmos DB account whose Azure Monitor metrics the workbook charts.')
param cosmosAccountId string

@description('Name of the Cosmos DB container of the sessions (filters the account\'s metrics).')
param sessionsContainerName string

var timeRange = 'TimeRange'

// The body of the workbook, in order: headings (kind 'text', Markdown) and KQL tiles (kind 'kql',
// a query file and a visualization). Every entry has the same fields so one loop renders them all.
var sections = [
  {
    kind: 'text'
    name: 'ru-heading'
    text: '### Request units\nPer function (`chat_sessions.function.request_charge`: what each invocation spent) and per Cosmos DB operation (`azure.cosmosdb.client.operation.request_charge`: every RU the process spent, start-up, readiness and CLI jobs included).'
    title: ''
    query: ''
    visualization: ''
    width: '100'
  }
  {
    kind: 'kql'
    name: 'ru-per-function-hourly'
    text: ''
    title: 'RU per function per hour'
    query: loadTextContent('../queries/ru-per-function-hourly.kql')
    visualization: 'timechart'
    width: '50'
  }
  {
    kind: 'kql'
    name: 'ru-per-operation-hourly'
    text: ''
    title: 'RU per Cosmos DB operation per hour'
    query: loadTextContent('../queries/ru-per-operation-hourly.kql')
    visualization: 'timechart'
    width: '50'
  }
  {
    kind: 'kql'
    name: 'ru-per-function-summary'
    text: ''
    title: 'RU per function over the time range'
    query: loadTextContent('../queries/ru-per-function-summary.kql')
    visualization: 'table'
    width: '100'
  }
  {
    kind: 'text'
    name: 'latency-heading'
    text: '### Latency and errors\nFrom the handler\'s server spans (`requests` rows with `faas.name`; the Functions host\'s own rows are left out). Durations in milliseconds.'
    title: ''
    query: ''
    visualization: ''
    width: '100'
  }
  {
    kind: 'kql'
    name: 'latency-p95-hourly'
    text: ''
    title: 'p95 duration per function per hour (ms)'
    query: loadTextContent('../queries/latency-p95-hourly.kql')
    visualization: 'timechart'
    width: '50'
  }
  {
    kind: 'kql'
    name: 'server-errors-hourly'
    text: ''
    title: 'Server errors per function per hour (5xx, failed queue and timer runs)'
    query: loadTextContent('../queries/server-errors-hourly.kql')
    visualization: 'timechart'
    width: '50'
  }
  {
    kind: 'kql'
    name: 'latency-summary'
    text: ''
    title: 'Per function: invocations, p50/p95/p99 (ms), errors'
    query: loadTextContent('../queries/latency-summary.kql')
    visualization: 'table'
    width: '100'
  }
  {
    kind: 'text'
    name: 'throttling-heading'
    text: '### Throttling and failed dependencies\nCosmos DB answers 429 when the RU/s are spent; the SDK retries, and a request answers 503 with `Retry-After` only when the retries run out.'
    title: ''
    query: ''
    visualization: ''
    width: '100'
  }
  {
    kind: 'kql'
    name: 'throttling'
    text: ''
    title: 'Cosmos DB 429 answers per 5 minutes, by operation'
    query: loadTextContent('../queries/throttling.kql')
    visualization: 'timechart'
    width: '50'
  }
  {
    kind: 'kql'
    name: 'failed-dependencies'
    text: ''
    title: 'Failed dependencies, and Cosmos DB answers that mean trouble'
    query: loadTextContent('../queries/failed-dependencies.kql')
    visualization: 'table'
    width: '50'
  }
  {
    kind: 'text'
    name: 'capacity-heading'
    text: '### Capacity, live (docs/capacity.md)\nRU per function per day and per invocation; RU/s per day on average and in the busiest hour, and their ratio: the peak factor the capacity model assumes.'
    title: ''
    query: ''
    visualization: ''
    width: '100'
  }
  {
    kind: 'kql'
    name: 'capacity-per-day'
    text: ''
    title: 'RU per function per day'
    query: loadTextContent('../queries/capacity-per-day.kql')
    visualization: 'table'
    width: '50'
  }
  {
    kind: 'kql'
    name: 'capacity-rus'
    text: ''
    title: 'RU/s per day: average, busiest hour, peak factor'
    query: loadTextContent('../queries/capacity-rus.kql')
    visualization: 'table'
    width: '50'
  }
]

var sectionItems = [for entry in sections: entry.kind == 'text' ? {
  type: 1
  name: entry.name
  content: {
    json: entry.text
  }
} : {
  type: 3
  name: entry.name
  customWidth: entry.width
  content: {
    version: 'KqlItem/1.0'
    query: entry.query
    size: 0
    title: entry.title
    timeContextFromParameter: timeRange
    queryType: 0
    resourceType: 'microsoft.insights/components'
    visualization: entry.visualization
  }
}]

// Azure Monitor's metrics of the Cosmos DB account, for the sessions container. Aggregation codes
// of workbook metric tiles: 1 sum, 3 maximum, 4 average, 7 count.
var metricNamespace = 'microsoft.documentdb/databaseaccounts'
var containerFilter = {
  id: '1'
  key: 'CollectionName'
  operator: 0
  values: [
    sessionsContainerName
  ]
}
var metricTiles = [
  {
    name: 'cosmos-request-units'
    title: 'Request units (TotalRequestUnits, sum per hour)'
    grain: 'PT1H'
    metrics: [
      {
        namespace: metricNamespace
        metric: '${metricNamespace}-Requests-TotalRequestUnits'
        aggregation: 1
      }
    ]
    filters: [
      containerFilter
    ]
  }
  {
    name: 'cosmos-throttled'
    title: 'Requests answered 429 (TotalRequests, count per 5 minutes)'
    grain: 'PT5M'
    metrics: [
      {
        namespace: metricNamespace
        metric: '${metricNamespace}-Requests-TotalRequests'
        aggregation: 7
      }
    ]
    filters: [
      containerFilter
      {
        id: '2'
        key: 'StatusCode'
        operator: 0
        values: [
          '429'
        ]
      }
    ]
  }
  {
    name: 'cosmos-storage'
    title: 'Storage: data and index (DataUsage, IndexUsage; bytes, hourly average)'
    grain: 'PT1H'
    metrics: [
      {
        namespace: metricNamespace
        metric: '${metricNamespace}-Requests-DataUsage'
        aggregation: 4
      }
      {
        namespace: metricNamespace
        metric: '${metricNamespace}-Requests-IndexUsage'
        aggregation: 4
      }
    ]
    filters: [
      containerFilter
    ]
  }
  {
    name: 'cosmos-documents'
    title: 'Documents (DocumentCount, hourly average)'
    grain: 'PT1H'
    metrics: [
      {
        namespace: metricNamespace
        metric: '${metricNamespace}-Requests-DocumentCount'
        aggregation: 4
      }
    ]
    filters: [
      containerFilter
    ]
  }
]

var metricItems = [for tile in metricTiles: {
  type: 10
  name: tile.name
  customWidth: '50'
  content: {
    chartId: 'workbook-${tile.name}'
    version: 'MetricsItem/2.0'
    size: 0
    chartType: 2
    resourceType: metricNamespace
    metricScope: 0
    resourceIds: [
      cosmosAccountId
    ]
    timeContextFromParameter: timeRange
    timeGrain: tile.grain
    metrics: tile.metrics
    filters: tile.filters
    title: tile.title
    gridSettings: {
      rowLimit: 10000
    }
  }
}]

var intro = {
  type: 1
  name: 'intro'
  content: {
    json: '## chat-sessions: what every request costs\nRequest units (RU) are what Cosmos DB bills. The tiles come from the app\'s OpenTelemetry in Application Insights (`customMetrics`, `requests`, `dependencies`), the last section from Azure Monitor\'s own Cosmos DB metrics, which count what Azure bills. The model these figures should match is `docs/capacity.md`; the alerts are described in `docs/deploy.md`.'
  }
}

var timeRangePicker = {
  type: 9
  name: 'parameters'
  content: {
    version: 'KqlParameterItem/1.0'
    style: 'pills'
    queryType: 0
    resourceType: 'microsoft.insights/components'
    parameters: [
      {
        id: 'b2f6a1d0-6a43-4c55-9f3e-0c7d5f1e2a10'
        version: 'KqlParameterItem/1.0'
        name: timeRange
        label: 'Time range'
        type: 4
        isRequired: true
        value: {
          durationMs: 86400000
        }
        typeSettings: {
          allowCustom: true
          selectableValues: [
            {
              durationMs: 3600000
            }
            {
              durationMs: 14400000
            }
            {
              durationMs: 86400000
            }
            {
              durationMs: 259200000
            }
            {
              durationMs: 604800000
            }
            {
              durationMs: 2592000000
            }
          ]
        }
      }
    ]
  }
}

var cosmosHeading = {
  type: 1
  name: 'cosmos-heading'
  content: {
    json: '### Azure Monitor metrics of the Cosmos DB account (the sessions container)\nWhat Azure counts and bills, independent of the app\'s telemetry: request units, 429 answers, storage (data and index) and documents.'
  }
}

var workbook = {
  version: 'Notebook/1.0'
  items: concat([
    intro
    timeRangePicker
  ], sectionItems, [
    cosmosHeading
  ], metricItems)
  fallbackResourceIds: [
    applicationInsightsId
  ]
  '$schema': 'https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json'
}

resource dashboard 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per component, so redeploying updates it.
  name: guid(applicationInsightsId, 'chat-sessions-workbook')
  location: location
  tags: union(tags, {
    'hidden-title': displayName
  })
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    // The schema version of serializedData.
    version: 'Notebook/1.0'
    sourceId: toLower(applicationInsightsId)
    serializedData: string(workbook)
  }
}

output id string = dashboard.id
