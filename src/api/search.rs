//! `GET /api/chat/search`: full-text search over the caller's history.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, AppState, conditional::json_with_etag, extract::ApiQuery, params::page_size,
};
use crate::{
    domain::{MessageId, MessageType, SessionId, Timestamp, UserId},
    search::{HitKey, SearchTerms},
    store::{SearchHit, SearchQuery},
};

/// Default page size of a search.
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;
/// Largest page size of a search.
pub const MAX_SEARCH_LIMIT: u32 = 50;

/// Query of `GET /api/chat/search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// What to look for: plain text, split into terms on whitespace; every
    /// term must match (case-insensitively, at the beginning of a word).
    /// 1–512 characters, not blank. Any characters are taken literally.
    #[param(min_length = 1, max_length = 512, pattern = r"\S")]
    pub q: String,
    /// Whose history (local mode), or a check against the principal.
    #[param(value_type = Option<UserId>)]
    pub user_id: Option<String>,
    /// Page size, 1–50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
    /// From the previous page.
    pub continuation_token: Option<String>,
    /// Only active (`true`) or archived (`false`) sessions.
    pub is_active: Option<bool>,
}

/// One hit: a message, or a session whose name matches (`message_id` null).
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResult {
    /// The session; `GET /api/chat/sessions/{session_id}` opens it.
    pub session_id: SessionId,
    /// Its name.
    #[schema(required = true)]
    pub session_name: Option<String>,
    /// The message; null when the session's name is the hit.
    #[schema(required = true)]
    pub message_id: Option<MessageId>,
    /// Who wrote the message; null for a name hit.
    #[schema(required = true)]
    pub message_type: Option<MessageType>,
    /// When the message was written; for a name hit, the session's
    /// `updated_at`. Results are ordered by it, newest first.
    pub created_at: Timestamp,
    /// At most 200 characters of the message (or name) around the first
    /// match, with `…` where cut; the whole text when it is short. A
    /// message's text is its content, then its tool calls' function names,
    /// a line each.
    pub snippet: String,
}

impl From<SearchHit> for SearchResult {
    fn from(hit: SearchHit) -> Self {
        Self {
            session_id: hit.session_id,
            session_name: hit.session_name,
            message_id: hit.message_id,
            message_type: hit.message_type,
            created_at: hit.created_at,
            snippet: hit.snippet,
        }
    }
}

/// Body of `GET /api/chat/search`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The page, newest first. It may hold fewer than `limit` results while
    /// `continuation_token` is not null: keep walking until it is.
    pub results: Vec<SearchResult>,
    /// Pass as `continuation_token` for the next page; null on the last.
    #[schema(required = true)]
    pub continuation_token: Option<String>,
}

/// `GET /api/chat/search`
#[utoipa::path(
    get,
    path = "/api/chat/search",
    tag = "search",
    summary = "Search the user's chat history",
    description = "Messages whose content (with the function names of the tool calls they make), and sessions whose name, contain every term of `q`: case-insensitively (Unicode case folding), each term at the beginning of a word (`kube` finds `Kubernetes`). Newest first (a message's `created_at`, a name hit's session `updated_at`), ties broken by ids; walking `continuation_token` yields every hit once. The same owner rules as listing sessions.",
    params(SearchParams),
    responses((status = 200, description = "A page of hits.", body = SearchResults))
)]
pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), None)?;
    let terms = SearchTerms::parse(&params.q)?;
    let limit = page_size(
        "limit",
        params.limit,
        DEFAULT_SEARCH_LIMIT,
        MAX_SEARCH_LIMIT,
    )?;
    let after = params
        .continuation_token
        .filter(|t| !t.is_empty())
        .map(|t| HitKey::from_token(&t))
        .transpose()?;
    let store = state.search.as_ref().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("the store was opened without search"))
    })?;
    let query = SearchQuery {
        terms,
        limit,
        is_active: params.is_active,
        after,
    };
    let page = store.search(&owner, &query).await?;
    let body = SearchResults {
        results: page.hits.into_iter().map(SearchResult::from).collect(),
        continuation_token: page.continuation.map(|key| key.to_token()),
    };
    Ok(json_with_etag(StatusCode::OK, &body, None))
}
