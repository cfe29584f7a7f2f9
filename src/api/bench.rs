//! A route for the benchmark's ceiling: the same bytes as a real answer,
//! served from memory. Only routed when `BENCH_ROUTES=1`.
//!
//! Two bodies, so each scenario is compared with a ceiling of its own size:
//! `GET` of a session (`?session_id=`) and a session listing
//! (`?list_limit=N`, the first N sessions of the user).

use std::sync::OnceLock;

use axum::{body::Bytes, extract::State, response::Response};

use super::{ApiError, AppState, extract::ApiQuery, sessions::SessionList};
use crate::{
    domain::{SessionId, UserId},
    store::{ListQuery, Owner},
};

/// The cached bodies, each rendered once.
#[derive(Debug, Default)]
pub struct Ceiling {
    session: OnceLock<Bytes>,
    list: OnceLock<Bytes>,
}

/// Query of the ceiling route.
#[derive(Debug, serde::Deserialize)]
pub struct CeilingParams {
    session_id: Option<String>,
    list_limit: Option<u32>,
    user_id: Option<String>,
}

/// `GET /_bench/ceiling?session_id=&user_id=` (or `?list_limit=&user_id=`):
/// the first call reads the session (or the listing) from the store; every
/// later call answers the cached bytes.
pub async fn ceiling(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<CeilingParams>,
) -> Result<Response, ApiError> {
    let cell = match params.list_limit {
        Some(_) => &state.bench.list,
        None => &state.bench.session,
    };
    let bytes = match cell.get() {
        Some(bytes) => bytes.clone(),
        None => {
            let body = render(&state, params).await?;
            cell.get_or_init(|| Bytes::from(body)).clone()
        }
    };
    Ok(super::conditional::json_bytes(bytes))
}

async fn render(state: &AppState, params: CeilingParams) -> Result<Vec<u8>, ApiError> {
    let owner = match params.user_id {
        Some(user) => Owner::User(UserId::parse(user)?),
        None => Owner::Anonymous,
    };
    let body = match (params.list_limit, params.session_id) {
        (Some(limit), _) => {
            let query = ListQuery {
                limit,
                is_active: None,
                continuation: None,
            };
            let page = state.store.list_sessions(&owner, &query).await?;
            serde_json::to_vec(&SessionList {
                sessions: page.sessions,
                continuation_token: page.continuation,
            })
        }
        (None, Some(id)) => {
            let id = SessionId::parse(id)?;
            serde_json::to_vec(&state.store.get_session(&owner, &id).await?.value)
        }
        (None, None) => {
            return Err(ApiError::Validation(
                "session_id or list_limit: one is required".into(),
            ));
        }
    };
    body.map_err(|e| ApiError::Internal(e.into()))
}
