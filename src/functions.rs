//! The Azure Functions custom-handler protocol for everything that is not a
//! forwarded HTTP request.
//!
//! The host posts `{"Data":{…},"Metadata":{…}}` to `/<FunctionName>` and
//! expects `{"Outputs":{…},"Logs":[…],"ReturnValue":…}`. A non-2xx answer
//! fails the invocation: a queue message is then retried and, after
//! `maxDequeueCount` (host.json), moved to `<queue>-poison`.
//!
//! HTTP functions normally arrive forwarded as-is (`enableForwardingHttpRequest`
//! in host.json); should forwarding be off, their invocation payloads are
//! translated here into ordinary requests to the same router, so the app works
//! either way.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, State},
    http::{HeaderName, HeaderValue, Method, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use crate::{
    api::{ApiError, AppState, routes::ROUTES},
    jobs::MigrationRequest,
    migration::{self, Checkpoint, Options, Quiet, Resume, RunError},
};

/// The queue-triggered migration function.
pub const MIGRATE_FUNCTION: &str = "MigrateChatSessions";
/// The timer-triggered straggler sweep.
pub const SWEEP_FUNCTION: &str = "MigrationSweep";
/// Binding name of the queue trigger in `MigrateChatSessions`.
pub const QUEUE_TRIGGER_BINDING: &str = "message";
/// Binding name of the queue output both migration functions write to.
pub const CONTINUATION_BINDING: &str = "continuation";
/// Binding name of the HTTP output of HTTP functions.
pub const HTTP_OUTPUT_BINDING: &str = "res";
/// Binding name of the HTTP trigger of HTTP functions.
pub const HTTP_TRIGGER_BINDING: &str = "req";

/// What the host posts for a non-forwarded invocation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationRequest {
    /// Trigger and input binding values, by binding name.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// Trigger metadata (`DequeueCount`, `Id`, `sys`, …). The host encodes
    /// most values as JSON text: strings arrive quoted, numbers as strings.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// What the host expects back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    /// Output binding values, by binding name. A string output is written as
    /// is (the host first tries to base64-decode it, so send JSON text).
    pub outputs: Map<String, Value>,
    /// Lines for the invocation log.
    pub logs: Vec<String>,
    /// For a `$return` binding; none of ours has one.
    pub return_value: Option<Value>,
}

/// Why a queue message cannot be used. Its text goes to the log and the
/// message is refused, so that it ends in the poison queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedMessage(pub String);

impl InvocationRequest {
    /// A metadata value as plain text: JSON-quoted strings unquoted.
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        match self.metadata.get(key)? {
            Value::String(s) => Some(match serde_json::from_str::<String>(s) {
                Ok(unquoted) => unquoted,
                Err(_) => s.clone(),
            }),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// How many times the queue has delivered this message (1 the first time).
    pub fn dequeue_count(&self) -> Option<u32> {
        self.metadata_text("DequeueCount")?.trim().parse().ok()
    }

    /// The queue message of trigger `binding`, decoded as JSON into `T`. The
    /// host passes the message text as a JSON string, sometimes encoded twice;
    /// a string whose content is itself a JSON string is unwrapped once more.
    pub fn queue_message<T: serde::de::DeserializeOwned>(
        &self,
        binding: &str,
    ) -> Result<T, MalformedMessage> {
        let raw = self
            .data
            .get(binding)
            .ok_or_else(|| MalformedMessage(format!("Data.{binding} is missing")))?;
        let mut value = raw.clone();
        for _ in 0..2 {
            match value {
                Value::String(text) => {
                    value = serde_json::from_str(&text).map_err(|e| {
                        MalformedMessage(format!(
                            "the message is not JSON ({e}): {}",
                            preview(&text)
                        ))
                    })?;
                }
                _ => break,
            }
        }
        serde_json::from_value(value).map_err(|e| MalformedMessage(format!("invalid message: {e}")))
    }
}

fn preview(text: &str) -> String {
    let cut: String = text.chars().take(120).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// The HTTP request of a non-forwarded HTTP invocation (`Data.req`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpTriggerData {
    /// The original URL, with path and query.
    pub url: String,
    /// The method.
    pub method: String,
    /// Header values; the host sends arrays, older hosts plain strings.
    #[serde(default)]
    pub headers: BTreeMap<String, OneOrMany>,
    /// The body as text (or JSON the host already parsed).
    #[serde(default)]
    pub body: Option<Value>,
}

/// A header value as the host sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

/// The HTTP response of a non-forwarded HTTP invocation (`Outputs.res`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpOutput {
    /// The status code.
    pub status_code: u16,
    /// Headers, one value each.
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
}

/// The routes the host invokes: one per function, `POST /<FunctionName>`.
/// `api` is the finished HTTP router that non-forwarded requests go to.
pub fn router(api: Router, state: AppState) -> Router {
    let envelope_limit = state.settings.max_body_bytes.saturating_mul(2) + 64 * 1024;
    let mut router = Router::new()
        .route(&format!("/{MIGRATE_FUNCTION}"), post(migrate))
        .route(&format!("/{SWEEP_FUNCTION}"), post(sweep))
        .with_state(state);
    for route in ROUTES {
        let api = api.clone();
        router = router.route(
            &format!("/{}", route.function),
            post(move |body: Bytes| invoke_http(api, body)),
        );
    }
    router.layer(DefaultBodyLimit::max(envelope_limit))
}

fn invocation(body: &[u8]) -> Result<InvocationRequest, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("not a Functions invocation payload: {e}")))
}

/// Answers a non-forwarded HTTP invocation by running the request through the
/// API router.
async fn invoke_http(api: Router, body: Bytes) -> Result<Json<InvocationResponse>, ApiError> {
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

/// `POST /MigrateChatSessions`: a message from the `chat-migration` queue.
async fn migrate(State(state): State<AppState>, body: Bytes) -> Response {
    let invocation = match invocation(&body) {
        Ok(invocation) => invocation,
        Err(e) => return e.into_response(),
    };
    let id = invocation.metadata_text("Id").unwrap_or_else(|| "?".into());
    let dequeue = invocation.dequeue_count().unwrap_or(0);
    let request: MigrationRequest = match invocation
        .queue_message::<MigrationRequest>(QUEUE_TRIGGER_BINDING)
        .and_then(|r| r.validated().map_err(MalformedMessage))
    {
        Ok(request) => request,
        Err(why) => {
            // Refused on every delivery: after maxDequeueCount the host moves
            // it to chat-migration-poison, where an operator can see it.
            tracing::error!(
                message_id = %id,
                dequeue_count = dequeue,
                "rejecting malformed migration message (it goes to chat-migration-poison after the last retry): {why}"
            );
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("malformed migration message {id}: {why}"),
            );
        }
    };
    let (Some(source), Some(store)) = (
        state.migration_source.clone(),
        state.migration_store.clone(),
    ) else {
        tracing::error!(message_id = %id, "no legacy source configured (COSMOS_ENDPOINT or MIGRATION_JSONL); refusing the message");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no legacy source is configured (COSMOS_ENDPOINT or MIGRATION_JSONL)".into(),
        );
    };
    let run_id = request
        .run_id
        .clone()
        .unwrap_or_else(|| format!("run-{id}"));
    let options = Options {
        batch_size: request.batch_size,
        dry_run: request.dry_run,
        delete_old: request.delete_old,
        run_id: run_id.clone(),
        budget: Some(state.settings.migration_budget),
        continues_step: request.step,
    };
    let resume = if request.dry_run {
        Resume::From(Box::new(request.resume.clone().unwrap_or_default()))
    } else {
        Resume::Store
    };
    let mut source = source.open(request.batch_size);
    match migration::run(
        source.as_mut(),
        store.as_ref(),
        &options,
        resume,
        &mut Quiet,
    )
    .await
    {
        Ok(checkpoint) => {
            let report = &checkpoint.report;
            let mut response = InvocationResponse {
                logs: report.to_string().lines().map(str::to_owned).collect(),
                ..InvocationResponse::default()
            };
            if report.finished {
                tracing::info!(run_id = %run_id, "migration finished\n{report}");
            } else {
                let next = MigrationRequest {
                    run_id: Some(run_id.clone()),
                    step: Some(checkpoint.step),
                    resume: request.dry_run.then(|| trimmed(checkpoint.clone())),
                    ..request
                };
                match serde_json::to_string(&next) {
                    Ok(text) => {
                        response
                            .outputs
                            .insert(CONTINUATION_BINDING.into(), Value::String(text));
                    }
                    Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
                tracing::info!(run_id = %run_id, step = checkpoint.step, "migration continues in a new message\n{report}");
            }
            Json(response).into_response()
        }
        Err(stale @ RunError::Stale { .. }) => {
            let why = stale.to_string();
            tracing::info!(run_id = %run_id, message_id = %id, "{why}");
            Json(InvocationResponse {
                logs: vec![why],
                ..InvocationResponse::default()
            })
            .into_response()
        }
        Err(RunError::Superseded(run)) => {
            let why = format!("another invocation is working on run {run}; this one stops");
            tracing::warn!(message_id = %id, "{why}");
            Json(InvocationResponse {
                logs: vec![why],
                ..InvocationResponse::default()
            })
            .into_response()
        }
        Err(RunError::Failed(e)) => {
            tracing::error!(run_id = %run_id, "migration invocation failed (the queue retries it): {e:#}");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("migration failed: {e}"),
            )
        }
    }
}

/// A checkpoint small enough for a queue message (64 KiB): id lists cut.
fn trimmed(mut checkpoint: Checkpoint) -> Checkpoint {
    let report = &mut checkpoint.report;
    report.orphans.truncate(20);
    report.invalid.truncate(20);
    report.conflicts.truncate(20);
    report.errors.truncate(20);
    checkpoint
}

/// A non-2xx answer to the host with the reason in `Logs`.
fn refuse(status: StatusCode, why: String) -> Response {
    let body = InvocationResponse {
        outputs: Map::new(),
        logs: vec![why],
        return_value: None,
    };
    (status, Json(body)).into_response()
}

/// `POST /MigrationSweep`: the timer. When enabled it enqueues a migration
/// run that picks up old-style messages written since the last run.
async fn sweep(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<InvocationResponse>, ApiError> {
    let invocation = invocation(&body)?;
    let past_due = invocation
        .data
        .get("timer")
        .and_then(|t| t.get("IsPastDue"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut response = InvocationResponse::default();
    if !state.settings.migration_sweep_enabled {
        response.logs.push(
            "migration sweep is disabled (MIGRATION_SWEEP_ENABLED=false); nothing enqueued".into(),
        );
        return Ok(Json(response));
    }
    let run = MigrationRequest::sweep(chrono::Utc::now());
    let text = serde_json::to_string(&run).map_err(|e| ApiError::Internal(e.into()))?;
    response
        .outputs
        .insert(CONTINUATION_BINDING.into(), Value::String(text));
    response.logs.push(format!(
        "migration sweep enqueued run {}{}",
        run.run_id.as_deref().unwrap_or("-"),
        if past_due {
            " (timer was past due)"
        } else {
            ""
        }
    ));
    tracing::info!(
        run_id = run.run_id.as_deref().unwrap_or("-"),
        "migration sweep enqueued"
    );
    Ok(Json(response))
}
