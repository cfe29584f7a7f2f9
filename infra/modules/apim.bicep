// Optional (main.bicep: apimEnabled): Azure API Management in front of the Function App, for a
// per-user write rate across every instance. The binary's own USER_WRITE_RATE holds per instance
// (docs/api.md#limits); this limits each user (the validated token's oid, the principal Easy Auth
// passes on) across all of them, before a request reaches an instance or spends request units.
// Consumption tier: billed per call, no VNet. Easy Auth still validates every token behind it;
// lock the Function App to APIM (access restrictions, private endpoint) or clients can go around.
param name string
param location string
param tags object = {}
@description('Base URL of the Function App, e.g. https://func-xyz.azurewebsites.net.')
param appUrl string
@description('Publisher email API Management requires.')
param publisherEmail string
@description('OpenID issuer of the tokens, e.g. https://login.microsoftonline.com/<tenant>/v2.0.')
param openIdIssuer string
@description('Accepted token audiences (api://<appId>, <appId>).')
param audiences array
@minValue(1)
@description('Writes (any method but GET, HEAD and OPTIONS) one user may send per minute, across every instance.')
param writesPerMinute int = 1200

// The policy: the token validated first (an unvalidated claim could name another user and spend
// their budget), then writes counted per oid. {issuer}, {audiences} and {calls} are filled in.
var audienceXml = '<audience>${join(audiences, '</audience><audience>')}</audience>'
var policy = loadTextContent('apim-policy.xml')

resource apim 'Microsoft.ApiManagement/service@2023-05-01-preview' = {
  // checkov:skip=CKV_AZURE_107: The Consumption tier has no virtual network; lock the Function App behind it to API Management with access restrictions or a private endpoint.
  // checkov:skip=CKV_AZURE_174: The gateway is the API's public entry point by design (a browser frontend calls it); every call needs a valid Microsoft Entra token (validate-jwt, and Easy Auth behind).
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Consumption'
    capacity: 0
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    publisherEmail: publisherEmail
    publisherName: 'chat-sessions'
  }
}

resource api 'Microsoft.ApiManagement/service/apis@2023-05-01-preview' = {
  parent: apim
  name: 'chat-sessions'
  properties: {
    displayName: 'chat-sessions'
    path: 'api'
    protocols: [
      'https'
    ]
    serviceUrl: '${appUrl}/api'
    subscriptionRequired: false
  }
}

// Every method and path goes through to the Function App as it came.
var methods = [
  'GET'
  'POST'
  'PUT'
  'DELETE'
  'HEAD'
  'OPTIONS'
]

resource operations 'Microsoft.ApiManagement/service/apis/operations@2023-05-01-preview' = [for method in methods: {
  parent: api
  name: 'all-${toLower(method)}'
  properties: {
    displayName: '${method} /*'
    method: method
    urlTemplate: '/*'
  }
}]

resource apiPolicy 'Microsoft.ApiManagement/service/apis/policies@2023-05-01-preview' = {
  parent: api
  name: 'policy'
  properties: {
    format: 'rawxml'
    value: replace(replace(replace(policy, '{issuer}', openIdIssuer), '{audiences}', audienceXml), '{calls}', string(writesPerMinute))
  }
}

output gatewayUrl string = apim.properties.gatewayUrl
