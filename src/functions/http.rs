//! HTTP functions invoked through the protocol (forwarding off): the
//! request in `Data.req` is run through the API router and its response
//! returned in `Outputs.res`.

use axum::{
    Json, Router,
    body::{Body, Bytes},
    http::{HeaderName, HeaderValue, Method, Request},
    response::Response,
};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use super::protocol::{
    HTTP_OUTPUT_BINDING, HTTP_TRIGGER_BINDING, HttpOutput, HttpTriggerData, InvocationResponse,
    OneOrMany, invocation,
};
use crate::api::ApiError;

/// Answers a non-forwarded HTTP invocation by running the request through the
/// API router.
pub async fn invoke(api: Router, body: Bytes) -> Result<Json<InvocationResponse>, ApiError> {
    let invocation = invocation(&body)?;
    let trigger: HttpTriggerData = invocation
        .data
        .get(HTTP_TRIGGER_BINDING)
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("Data.{HTTP_TRIGGER_BINDING}: {e}")))?
        .ok_or_else(|| ApiError::BadRequest(format!("Data.{HTTP_TRIGGER_BINDING} is missing")))?;
    let request = to_request(&trigger)?;
    let Ok(response) = api.oneshot(request).await;
    let output = to_output(response).await?;
    let mut outputs = Map::new();
    outputs.insert(
        HTTP_OUTPUT_BINDING.into(),
        serde_json::to_value(output).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(Json(InvocationResponse {
        outputs,
        logs: Vec::new(),
        return_value: None,
    }))
}

fn to_request(trigger: &HttpTriggerData) -> Result<Request<Body>, ApiError> {
    let bad = |what: &str| ApiError::BadRequest(format!("Data.req: {what}"));
    // Keep only path and query: the router does not care about the host.
    let after_scheme = trigger
        .url
        .split_once("://")
        .map_or(trigger.url.as_str(), |(_, rest)| rest);
    let path_and_query = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let method = Method::from_bytes(trigger.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad("invalid Method"))?;
    let mut builder = Request::builder().method(method).uri(path_and_query);
    for (name, values) in &trigger.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("invalid header name"))?;
        let values = match values {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(vs) => vs.as_slice(),
        };
        for value in values {
            let value = HeaderValue::from_str(value).map_err(|_| bad("invalid header value"))?;
            builder = builder.header(name.clone(), value);
        }
    }
    let body = match &trigger.body {
        None | Some(Value::Null) => Body::empty(),
        Some(Value::String(text)) => Body::from(text.clone()),
        Some(json) => Body::from(json.to_string()),
    };
    builder.body(body).map_err(|e| bad(&e.to_string()))
}

async fn to_output(response: Response) -> Result<HttpOutput, ApiError> {
    let status_code = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading a response body: {e}")))?
        .to_bytes();
    Ok(HttpOutput {
        status_code,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}
