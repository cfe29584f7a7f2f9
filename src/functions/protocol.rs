//! The host's invocation payloads as serde types, with the quirks of real
//! hosts (metadata JSON-encoded, queue text sometimes encoded twice).

use std::collections::BTreeMap;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::ApiError;

/// The queue-triggered migration function.
pub const MIGRATE_FUNCTION: &str = "MigrateChatSessions";
/// The timer-triggered straggler sweep.
pub const SWEEP_FUNCTION: &str = "MigrationSweep";
/// The timer-triggered retention sweep.
pub const RETENTION_FUNCTION: &str = "RetentionSweep";
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

/// The invocation payload of a request body.
pub(crate) fn invocation(body: &[u8]) -> Result<InvocationRequest, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("not a Functions invocation payload: {e}")))
}

/// A non-2xx answer to the host with the reason in `Logs`.
pub(crate) fn refuse(status: StatusCode, why: String) -> Response {
    let body = InvocationResponse {
        outputs: Map::new(),
        logs: vec![why],
        return_value: None,
    };
    (status, Json(body)).into_response()
}
