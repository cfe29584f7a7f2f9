//! Service endpoints: the host's probe, health, and the answers for unknown
//! routes and methods.

use axum::{Json, extract::State, response::IntoResponse};

use super::{ApiError, AppState};

/// `GET /`: the Functions host polls it until the handler is up, so it does
/// no work at all.
pub async fn probe() -> &'static str {
    "ok"
}

/// `GET /api/health`
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "meta",
    summary = "Liveness",
    responses((status = 200, description = "The service is up.", body = Health))
)]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(Health {
        status: "ok",
        store: state.store.kind(),
    })
}

/// Body of `GET /api/health`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The store backend (`sqlite`, `cosmos`).
    pub store: &'static str,
}

/// Any unknown path.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// A known path with a method it does not accept.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
