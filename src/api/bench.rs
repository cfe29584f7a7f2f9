//! A route for the benchmark's ceiling: the same bytes as `GET` of a
//! session, served from memory. Only routed when `BENCH_ROUTES=1`.

use std::sync::OnceLock;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState, extract::ApiQuery, sessions::UserParam};
use crate::{domain::SessionId, store::Owner};

/// The cached body.
#[derive(Debug, Default)]
pub struct Ceiling(OnceLock<Bytes>);

/// Query of the ceiling route.
#[derive(Debug, serde::Deserialize)]
pub struct CeilingParams {
    session_id: String,
    #[serde(flatten)]
    user: UserParam,
}

/// `GET /_bench/ceiling?session_id=&user_id=`: the first call reads the
/// session from the store; every later call answers the cached bytes.
pub async fn ceiling(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<CeilingParams>,
) -> Result<Response, ApiError> {
    let bytes = match state.bench.0.get() {
        Some(bytes) => bytes.clone(),
        None => {
            let owner = match params.user.user_id {
                Some(user) => Owner::User(crate::domain::UserId::parse(user)?),
                None => Owner::Anonymous,
            };
            let id = SessionId::parse(params.session_id)?;
            let session = state.store.get_session(&owner, &id).await?;
            let body =
                serde_json::to_vec(&session.value).map_err(|e| ApiError::Internal(e.into()))?;
            state.bench.0.get_or_init(|| Bytes::from(body)).clone()
        }
    };
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
