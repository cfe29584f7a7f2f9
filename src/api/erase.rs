//! `POST /api/chat/erase`: the caller's right to erasure. Deletes every
//! session of the caller (sealed pages and search entries included) and
//! their documents in the legacy per-message store, when one is configured.

use std::time::Instant;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    ApiError, AppState,
    conditional::json_with_etag,
    extract::{ApiJson, ApiQuery},
    params::UserParam,
};
use crate::{
    domain::UserId,
    store::{Owner, erase::erase_user},
};

/// Body of `POST /api/chat/erase`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseBody {
    /// Exactly the caller's own user id: proof that erasing was meant.
    pub confirm: String,
    /// The user (local mode) or a check against the principal.
    #[schema(value_type = Option<UserId>)]
    pub user_id: Option<String>,
}

/// What an erase request deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct EraseResult {
    /// Sessions deleted by this request.
    pub sessions_deleted: u64,
    /// Messages in those sessions, of every branch.
    pub messages_deleted: u64,
    /// Documents deleted from the legacy per-message store (0 when none is
    /// configured).
    pub legacy_messages_deleted: u64,
    /// True once nothing of the user is left. False when the request ran out
    /// of time first: send the same request again to finish (it continues
    /// where this one stopped).
    pub complete: bool,
}

/// `POST /api/chat/erase`
#[utoipa::path(
    post,
    path = "/api/chat/erase",
    tag = "export",
    summary = "Erase everything of the user",
    description = "Deletes every session of the caller with all its messages (sealed pages and search entries included) and, when a legacy per-message store (the Cosmos legacy container) is configured, the caller's documents there. `confirm` must be exactly the caller's user id (else 422, nothing deleted); a caller without a user id (local mode without `user_id`) gets 422. No other user's data is touched. Work is done in batches within a time limit: when `complete` is false, send the same request again; it continues where the last one stopped (also after a crash), and reports what it deleted itself.",
    params(UserParam),
    request_body(content = EraseBody, description = "`{\"confirm\": \"<your user id>\"}`."),
    responses((status = 200, description = "What was deleted.", body = EraseResult))
)]
pub async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<UserParam>,
    ApiJson(body): ApiJson<EraseBody>,
) -> Result<Response, ApiError> {
    let owner = state.owner(&headers, params.user_id.as_deref(), body.user_id.as_deref())?;
    let Owner::User(user) = owner else {
        return Err(ApiError::Validation(
            "user_id: there is no one to erase; name the user whose data to erase".into(),
        ));
    };
    if body.confirm != user.as_str() {
        return Err(ApiError::Validation(
            "confirm: must be exactly your own user id".into(),
        ));
    }
    let deadline = Instant::now() + state.settings.erase_budget;
    let erased = erase_user(
        state.store.as_ref(),
        state.legacy_eraser.as_deref(),
        &user,
        deadline,
    )
    .await?;
    tracing::info!(
        sessions = erased.sessions_deleted,
        messages = erased.messages_deleted,
        legacy_messages = erased.legacy_messages_deleted,
        complete = erased.complete,
        "erased a user's data"
    );
    let body = EraseResult {
        sessions_deleted: erased.sessions_deleted,
        messages_deleted: erased.messages_deleted,
        legacy_messages_deleted: erased.legacy_messages_deleted,
        complete: erased.complete,
    };
    Ok(json_with_etag(StatusCode::OK, &body, None))
}
