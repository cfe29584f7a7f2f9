//! The session endpoints: `/api/chat/sessions…`.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    ApiError, AppState,
    extract::{ApiJson, ApiPath, ApiQuery},
    json_with_etag, none_match_tags, write_precondition,
};
use crate::{
    domain::{
        JsonObject, MessageId, MessageType, NewMessage, NewSession, SessionId, SessionPatch,
        SessionSummary, Timestamp,
    },
    store::{ETag, ListQuery, StoreError},
};

/// Default page size of a session listing.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Largest page size of a session listing.
pub const MAX_LIST_LIMIT: u32 = 200;

/// `?user_id=` on endpoints that name one session.
#[derive(Debug, Default, Deserialize)]
pub struct UserParam {
    /// The user (local mode), or a check against the principal (Easy Auth).
    pub user_id: Option<String>,
}

/// Query of `GET /api/chat/sessions`.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// Whose sessions.
    pub user_id: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// From the previous page.
    pub continuation_token: Option<String>,
    /// Only active (`true`) or archived (`false`) sessions.
    pub is_active: Option<bool>,
}

/// Body of `GET /api/chat/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionList {
    /// The page, without messages.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `continuation_token` for the next page; null on the last.
    pub continuation_token: Option<String>,
}

/// Body of `POST /api/chat/sessions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// The session id; generated when absent.
    pub id: Option<String>,
    /// The owner (local mode) or a check against the principal.
    pub user_id: Option<String>,
    /// A display name.
    pub session_name: Option<String>,
    /// Free-form data.
    pub context: Option<JsonObject>,
}

/// Body of `PUT /api/chat/sessions/{session_id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionBody {
    /// A new name; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub session_name: Option<Option<String>>,
    /// Archive (`false`) or reactivate (`true`).
    pub is_active: Option<bool>,
    /// Replaces the context.
    pub context: Option<JsonObject>,
    /// The user (local mode) or a check against the principal.
    pub user_id: Option<String>,
}

/// Tells a member given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST /api/chat/sessions/{session_id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessageBody {
    /// The text.
    pub content: String,
    /// `user`, `assistant` or `system`.
    pub message_type: String,
    /// Free-form data.
    pub metadata: Option<JsonObject>,
    /// A client id that makes retries safe; generated when absent.
    pub id: Option<String>,
    /// The user (local mode) or a check against the principal.
    pub user_id: Option<String>,
}

fn session_id(raw: String) -> Result<SessionId, ApiError> {
    Ok(SessionId::parse(raw)?)
}

/// `GET /api/chat/sessions`
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit: must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let query = ListQuery {
        limit,
        is_active: params.is_active,
        continuation: params.continuation_token.filter(|t| !t.is_empty()),
    };
    let page = state.store.list_sessions(&owner, &query).await?;
    let body = SessionList {
        sessions: page.sessions,
        continuation_token: page.continuation,
    };
    Ok(json_with_etag(StatusCode::OK, &body, None))
}

/// `POST /api/chat/sessions`
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<CreateSessionBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    let id = body.id.map(session_id).transpose()?;
    let new = NewSession::new(
        id,
        owner.user_id().cloned(),
        body.session_name,
        body.context.unwrap_or_default(),
        Timestamp::now(),
    )?;
    let stored = state.store.create_session(new).await?;
    let mut response = json_with_etag(StatusCode::CREATED, &stored.value, Some(&stored.etag));
    let location = format!("/api/chat/sessions/{}", stored.value.id);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /api/chat/sessions/{session_id}`
///
/// The rendered body is cached per session and revalidated by version on
/// every request: a session that did not change is one small store read and
/// no serialisation. `If-None-Match` with the current `ETag` is a 304.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<UserParam>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let client_tags = none_match_tags(&headers);
    let cached = state.renders.get(&id);
    // Without a cached copy, the client's own tag still spares the read.
    let known = match &cached {
        Some((etag, _)) => Some(etag.clone()),
        None => client_tags
            .iter()
            .find(|t| t.as_str() != "*")
            .map(|t| ETag::new(t.as_str())),
    };
    let fresh = match state
        .store
        .get_session_if_changed(&owner, &id, known.as_ref())
        .await
    {
        Err(StoreError::NotFound) => {
            state.renders.remove(&id);
            return Err(ApiError::session_not_found());
        }
        other => other?,
    };
    let (etag, body) = match (fresh, cached) {
        (Some(stored), _) => {
            let body = Bytes::from(
                serde_json::to_vec(&stored.value).map_err(|e| ApiError::Internal(e.into()))?,
            );
            state.renders.put(&id, stored.etag.clone(), body.clone());
            (stored.etag, Some(body))
        }
        (None, Some((etag, body))) => (etag, Some(body)),
        // Unchanged since the client's tag, and nothing cached.
        (None, None) => (known.expect("a conditional read had a tag"), None),
    };
    let etag_value = HeaderValue::from_str(etag.as_str()).ok();
    let not_modified = client_tags.iter().any(|t| t == "*" || t == etag.as_str());
    let mut response = match body {
        Some(body) if !not_modified => {
            let mut r = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        _ => StatusCode::NOT_MODIFIED.into_response(),
    };
    if let Some(value) = etag_value {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

/// `PUT /api/chat/sessions/{session_id}`
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<UpdateSessionBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    let id = session_id(raw_id)?;
    let patch = SessionPatch {
        session_name: body.session_name,
        is_active: body.is_active,
        context: body.context,
    };
    patch.validate()?;
    let if_match = write_precondition(&state, &owner, &id, &headers).await?;
    let stored = state
        .store
        .update_session(&owner, &id, &patch, if_match.as_ref())
        .await?;
    Ok(json_with_etag(
        StatusCode::OK,
        &stored.value,
        Some(&stored.etag),
    ))
}

/// `DELETE /api/chat/sessions/{session_id}`
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<UserParam>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    let if_match = write_precondition(&state, &owner, &id, &headers).await?;
    state
        .store
        .delete_session(&owner, &id, if_match.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/chat/sessions/{session_id}/messages`
pub async fn send_message(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<SendMessageBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    let id = session_id(raw_id)?;
    let message = NewMessage::new(
        body.id.map(MessageId::parse).transpose()?,
        body.content,
        MessageType::parse(&body.message_type)?,
        owner.user_id().cloned(),
        body.metadata.unwrap_or_default(),
    )?;
    let appended = state.store.append_message(&owner, &id, message).await?;
    let status = if appended.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_with_etag(
        status,
        &appended.message,
        Some(&appended.etag),
    ))
}
