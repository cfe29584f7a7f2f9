//! The session endpoints: `/api/chat/sessions…`.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, AppState,
    conditional::{
        json_bytes, json_with_etag, none_match_hits, none_match_tags, not_modified,
        write_precondition,
    },
    extract::{ApiJson, ApiPath, ApiQuery},
    params::{UserParam, page_size, session_id},
    stream::stream_session,
    tree,
};
use crate::{
    domain::{
        ChatSession, JsonObject, MessageId, NewSession, SessionId, SessionPatch, SessionSummary,
        Timestamp, UserId,
    },
    store::{ETag, ListQuery, Owner, StoreError},
    telemetry::instruments,
};

/// Default page size of a session listing.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Largest page size of a session listing.
pub const MAX_LIST_LIMIT: u32 = 200;

/// Query of `GET /api/chat/sessions/{session_id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// The user (local mode), or a check against the principal (Easy Auth).
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Return only the newest N messages (1–10000); `message_count` still
    /// counts them all. Without it, the whole history.
    #[param(minimum = 1, maximum = 10000)]
    pub messages_limit: Option<u32>,
    /// Show the branch through this message instead of the current one (a
    /// deep link, a search hit on another branch): the path to it, then its
    /// newest replies down to a leaf; the stored current branch stays.
    /// `message_count` and `last_message_at` then describe that branch, and
    /// `messages_limit` keeps its newest N. An id the session lacks → 422.
    #[param(value_type = Option<MessageId>)]
    pub message_id: Option<String>,
}

/// Largest `messages_limit`.
pub const MAX_MESSAGES_LIMIT: u32 = 10_000;
/// Query of `GET /api/chat/sessions`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Whose sessions.
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// From the previous page.
    pub continuation_token: Option<String>,
    /// Only active (`true`) or archived (`false`) sessions.
    pub is_active: Option<bool>,
}

/// Body of `GET /api/chat/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The page, without messages.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `continuation_token` for the next page; null on the last.
    #[schema(required = true)]
    pub continuation_token: Option<String>,
}

/// Body of `POST /api/chat/sessions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    /// The session id; generated when absent.
    #[schema(value_type = Option<SessionId>)]
    pub id: Option<String>,
    /// The owner (local mode) or a check against the principal.
    #[schema(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// A display name.
    #[schema(
        max_length = 256,
        pattern = r"^[^\u0000-\u0008\u000A-\u001F\u007F-\u009F]*$"
    )]
    pub session_name: Option<String>,
    /// Free-form data.
    #[schema(value_type = Option<Object>)]
    pub context: Option<JsonObject>,
}

/// Body of `PUT /api/chat/sessions/{session_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionBody {
    /// A new name; `null` clears it.
    #[serde(default, deserialize_with = "super::params::present")]
    #[schema(value_type = Option<String>, max_length = 256, pattern = r"^[^\u0000-\u0008\u000A-\u001F\u007F-\u009F]*$")]
    pub session_name: Option<Option<String>>,
    /// Archive (`false`) or reactivate (`true`); `null` leaves it.
    pub is_active: Option<bool>,
    /// Replaces the context; `null` leaves it.
    #[schema(value_type = Option<Object>)]
    pub context: Option<JsonObject>,
    /// The user (local mode) or a check against the principal.
    #[schema(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Make the branch through this message the current one (what `GET`
    /// shows and appends follow): the path to it, then its newest replies
    /// down to a leaf. Alone or with `user_id` only: combined with another
    /// change it is a 422. An id the session lacks → 422; `null` leaves the
    /// branch.
    #[schema(value_type = Option<MessageId>)]
    pub current_message_id: Option<String>,
}

/// `GET /api/chat/sessions`
#[utoipa::path(
    get,
    path = "/api/chat/sessions",
    tag = "sessions",
    summary = "List the user's sessions",
    description = "Newest activity (updated_at) first, without messages, paged by an opaque continuation_token.",
    params(
        ListParams,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "The ETag of an earlier answer to the same request: 304 while the user's sessions are unchanged."),
    ),
    responses(
        (status = 200, description = "A page of sessions.", body = SessionList, headers(
            ("ETag" = String, description = "Version of this page, where the store keeps one (the embedded store)."),
        )),
        (status = 304, description = "Unchanged since the ETag in If-None-Match."),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let limit = page_size("limit", params.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let query = ListQuery {
        limit,
        is_active: params.is_active,
        continuation: params.continuation_token.filter(|t| !t.is_empty()),
    };
    // The owner's version is read before the page: a page rendered now is
    // at least as new as that version, so it is current while the version
    // stays the same (any change to the owner's sessions bumps it).
    let version = state.store.sessions_version(&owner).await?;
    let key = listing_key(&owner, &query);
    let cached = version.as_ref().and_then(|v| {
        state
            .listings
            .get(&key)
            .filter(|(at, _)| at == v)
            .map(|(_, body)| body)
    });
    if version.is_some() {
        instruments::cache_lookup(instruments::Cache::Listing, cached.is_some());
    }
    // While the owner's version stands, this page is what the client has.
    let etag = version.as_ref().map(|v| listing_etag(&key, v));
    if let Some(tag) = &etag
        && none_match_hits(&headers, tag)
    {
        return Ok(not_modified(tag));
    }
    let body = match cached {
        Some(body) => body,
        None => {
            let page = state.store.list_sessions(&owner, &query).await?;
            let body = SessionList {
                sessions: page.sessions,
                continuation_token: page.continuation,
            };
            // One buffer sized for the page up front (a session is ~300
            // bytes), not grown by doubling from a few bytes as `Json` does.
            let mut bytes = Vec::with_capacity(64 + 384 * body.sessions.len());
            serde_json::to_writer(&mut bytes, &body).map_err(|e| ApiError::Internal(e.into()))?;
            let bytes = Bytes::from(bytes);
            if let Some(version) = version {
                state.listings.put(&key, version, bytes.clone());
            }
            bytes
        }
    };
    let mut response = json_bytes(body);
    if let Some(value) = etag.and_then(|t| HeaderValue::from_str(t.as_str()).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

/// The `ETag` of a listing: the owner's version, tied to the page asked
/// for and whose it is (under Easy Auth one URL serves every user), and to
/// this process, since another store file may reach the same version.
fn listing_etag(key: &str, version: &ETag) -> ETag {
    use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
    static PROCESS: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
    let mut hasher = PROCESS.build_hasher();
    key.hash(&mut hasher);
    version.as_str().hash(&mut hasher);
    ETag::new(format!("l{:016x}", hasher.finish()))
}

/// What a cached listing is filed under: whose, and which page of what.
fn listing_key(owner: &Owner, query: &ListQuery) -> String {
    // "u:" before a user id, so no user id can pass for the anonymous owner.
    let whose = owner
        .user_id()
        .map_or_else(|| "anonymous".to_owned(), |u| format!("u:{}", u.as_str()));
    format!(
        "{whose}\n{:?}\n{}\n{}",
        query.is_active,
        query.limit,
        query.continuation.as_deref().unwrap_or("")
    )
}

/// `POST /api/chat/sessions`
#[utoipa::path(
    post,
    path = "/api/chat/sessions",
    tag = "sessions",
    summary = "Create a session",
    params(UserParam),
    request_body(content = Option<CreateSessionBody>, description = "All members optional; the body may be left out."),
    responses((status = 201, description = "Created.", body = ChatSession, headers(
        ("ETag" = String, description = "Version of the session, for If-Match."),
        ("Location" = String, description = "URL of the session."),
    )))
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<CreateSessionBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    state.admission.write(&owner)?;
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
#[utoipa::path(
    get,
    path = "/api/chat/sessions/{session_id}",
    tag = "sessions",
    summary = "Get a session with all its messages",
    description = "The whole history of the current branch, oldest first (one point read on Cosmos DB while the session fits in its document; one more per sealed page for long sessions). `messages_limit=N` returns only the newest N messages: one point read when they are all in the session document. `message_id=X` shows the branch through message X instead (the current branch stays); a message with alternatives lists them in `siblings`.",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        GetParams,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "An ETag from an earlier answer: 304 while unchanged."),
    ),
    responses(
        (status = 200, description = "The session, messages oldest first.", body = ChatSession, headers(
            ("ETag" = String, description = "Version of the session."),
        )),
        (status = 304, description = "Unchanged since the ETag in If-None-Match.", headers(
            ("ETag" = String, description = "Version of the session."),
        )),
    )
)]
///
/// The rendered body is cached per session and revalidated by version on
/// every request: a session that did not change is one small store read and
/// no serialisation. `If-None-Match` with the current `ETag` is a 304.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let id = session_id(raw_id)?;
    if let Some(limit) = params.messages_limit {
        page_size("messages_limit", Some(limit), limit, MAX_MESSAGES_LIMIT)?;
    }
    if let Some(message) = params.message_id {
        return tree::read_branch(
            &state,
            &headers,
            &owner,
            &id,
            message,
            params.messages_limit,
        )
        .await;
    }
    if let Some(limit) = params.messages_limit {
        let stored = state.store.get_session_tail(&owner, &id, limit).await?;
        // The tail is small; the 304 spares sending it and the client's
        // work (the web app revalidates an open chat this way).
        if none_match_hits(&headers, &stored.etag) {
            return Ok(not_modified(&stored.etag));
        }
        return Ok(json_with_etag(
            StatusCode::OK,
            &stored.value,
            Some(&stored.etag),
        ));
    }
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
    let fresh = match state.store.read_session(&owner, &id, known.as_ref()).await {
        Err(StoreError::NotFound) => {
            state.renders.remove(&id);
            return Err(ApiError::session_not_found());
        }
        other => other?,
    };
    instruments::cache_lookup(
        instruments::Cache::Session,
        fresh.is_none() && cached.is_some(),
    );
    let (etag, body) = match (fresh, cached) {
        // A long session streams out page by page, never whole in memory.
        (Some(read), _) if read.older.is_some() => {
            if none_match_hits(&headers, &read.etag) {
                return Ok(not_modified(&read.etag));
            }
            return stream_session(id, read);
        }
        (Some(read), _) => {
            let session = ChatSession::from_parts(read.summary, read.newest);
            let body = Bytes::from(
                serde_json::to_vec(&session).map_err(|e| ApiError::Internal(e.into()))?,
            );
            state.renders.put(&id, read.etag.clone(), body.clone());
            (read.etag, Some(body))
        }
        (None, Some((etag, body))) => (etag, Some(body)),
        // Unchanged since the client's tag, and nothing cached.
        (None, None) => (known.expect("a conditional read had a tag"), None),
    };
    let etag_value = HeaderValue::from_str(etag.as_str()).ok();
    let not_modified = client_tags.iter().any(|t| t == "*" || t == etag.as_str());
    let mut response = match body {
        Some(body) if !not_modified => json_bytes(body),
        _ => StatusCode::NOT_MODIFIED.into_response(),
    };
    if let Some(value) = etag_value {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

/// `PUT /api/chat/sessions/{session_id}`
#[utoipa::path(
    put,
    path = "/api/chat/sessions/{session_id}",
    tag = "sessions",
    summary = "Rename, archive or change the context of a session",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        UserParam,
        ("If-Match" = Option<String>, Header, nullable = false, description = "Update only if the session still has this ETag (412 otherwise)."),
    ),
    request_body(content = Option<UpdateSessionBody>, description = "Members left out stay as they are (no body changes nothing but updated_at); unknown members are a 422. `current_message_id` switches the current branch and takes no other change."),
    responses((status = 200, description = "The updated session.", body = ChatSession, headers(
        ("ETag" = String, description = "New version of the session."),
    )))
)]
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
    if let Some(message) = body.current_message_id {
        return tree::switch_branch(&state, &headers, &owner, &id, message, &patch).await;
    }
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
#[utoipa::path(
    delete,
    path = "/api/chat/sessions/{session_id}",
    tag = "sessions",
    summary = "Delete a session and its messages",
    params(
        ("session_id" = SessionId, Path, description = "The session."),
        UserParam,
        ("If-Match" = Option<String>, Header, nullable = false, description = "Delete only if the session still has this ETag (412 otherwise)."),
    ),
    responses((status = 204, description = "Deleted."))
)]
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
    // A deleted session is never read again: free its rendered body now
    // rather than when the cache happens to evict it.
    state.renders.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
