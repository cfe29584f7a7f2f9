//! Conditional requests: `ETag` on answers, `If-Match` on writes and
//! `If-None-Match` on reads.

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::{
    domain::SessionId,
    store::{ETag, Owner},
};

/// A JSON response with an optional `ETag`.
pub(crate) fn json_with_etag<T: Serialize>(
    status: StatusCode,
    body: &T,
    etag: Option<&ETag>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(e.as_str()).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// A 200 of JSON already serialised (a cached rendering, a stream).
pub(crate) fn json_bytes(body: impl Into<axum::body::Body>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// An `If-Match` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IfMatch {
    Any,
    Tags(Vec<ETag>),
}

/// Reads `If-Match`. Lenient on purpose: a tag without quotes is taken as
/// that tag, and anything that names no current version (an empty or garbled
/// header, weak tags, which never match under strong comparison) simply fails
/// the condition with a 412. A write never proceeds on a header it could not
/// read.
fn parse_if_match(headers: &HeaderMap) -> Option<IfMatch> {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for value in values {
        let text = String::from_utf8_lossy(value.as_bytes());
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                return Some(IfMatch::Any);
            }
            if !item.starts_with("W/") {
                tags.push(ETag::new(item));
            }
        }
    }
    Some(IfMatch::Tags(tags))
}

/// The version a write must match, from `If-Match`: `None` to write
/// unconditionally. With several tags, the current one is looked up once and
/// used if listed.
pub(crate) async fn write_precondition(
    state: &AppState,
    owner: &Owner,
    id: &SessionId,
    headers: &HeaderMap,
) -> Result<Option<ETag>, ApiError> {
    let stale =
        || ApiError::PreconditionFailed("If-Match does not match the session's ETag".into());
    match parse_if_match(headers) {
        None | Some(IfMatch::Any) => Ok(None),
        Some(IfMatch::Tags(tags)) => match tags.as_slice() {
            [] => Err(stale()),
            [one] => Ok(Some(one.clone())),
            many => {
                let current = state.store.get_session(owner, id).await?.etag;
                if many.contains(&current) {
                    Ok(Some(current))
                } else {
                    Err(stale())
                }
            }
        },
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`): the client has this
/// version already.
pub(crate) fn none_match_hits(headers: &HeaderMap, etag: &ETag) -> bool {
    none_match_tags(headers)
        .iter()
        .any(|t| t == "*" || t == etag.as_str())
}

/// A 304 carrying `etag`.
pub(crate) fn not_modified(etag: &ETag) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// A 204 carrying `etag` (the session's version after a delete inside it).
pub(crate) fn no_content_with_etag(etag: &ETag) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The entity-tags of `If-None-Match` (weak ones stripped of `W/`, as
/// If-None-Match compares weakly); `*` is kept as is.
pub(crate) fn none_match_tags(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.trim().trim_start_matches("W/").to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}
