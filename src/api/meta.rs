//! Service endpoints: the host's probe, liveness and readiness, the OpenAPI
//! document, and the answers for unknown routes and methods.

use axum::{
    Extension, Json,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};

use super::{ApiError, AppState, ui};

/// `GET /`: the Functions host polls it until the handler is up, so it does
/// no work at all; a browser (`Accept: text/html`) is sent to the web app.
pub async fn probe(headers: HeaderMap) -> Response {
    if ui::wants_html(&headers) {
        return Redirect::to(ui::START).into_response();
    }
    "ok".into_response()
}

/// `GET /api/health`: liveness. 200 while the process serves, whatever the
/// store's state, which it reports as last known (it asks the store
/// nothing).
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "meta",
    summary = "Liveness",
    description = "200 while the process serves, whatever the state of the store, which it \
                   reports as last known without asking the store. Why the store is not ready: \
                   `GET /api/health/ready`.",
    responses((status = 200, description = "The service is up.", body = Health))
)]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(Health {
        status: "ok",
        store: state.store.kind(),
        store_state: state.store.state().name(),
    })
}

/// Body of `GET /api/health`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The store backend (`sqlite`, `cosmos`).
    pub store: &'static str,
    /// `ready`; `connecting` until the store is first reached (data requests
    /// answer 503 meanwhile); `unavailable` when the last readiness check
    /// failed.
    #[schema(example = "ready")]
    pub store_state: &'static str,
}

/// `GET /api/health/ready`: readiness. Asks the store (at most every few
/// seconds) whether it can serve.
#[utoipa::path(
    get,
    path = "/api/health/ready",
    tag = "meta",
    summary = "Readiness",
    description = "200 when the store answers. Otherwise 503 problem+json with `Retry-After`, \
                   whose `detail` names the cause for an operator: the identity could not get a \
                   token (and which client id it used), the endpoint cannot be reached, the \
                   database or container named in the settings does not exist, or (embedded \
                   store) the disk of its data directory is full or the directory cannot be \
                   written. The store is asked at most every 5 seconds; answers in between are \
                   reused.",
    responses((status = 200, description = "The store answers.", body = Ready))
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    match state.store.check_ready().await {
        Ok(()) => Ok(Json(Ready {
            status: "ready",
            store: state.store.kind(),
        })),
        Err(why) => Err(ApiError::NotReady {
            detail: why.to_string(),
            retry_after: why.retry_after.max(std::time::Duration::from_secs(1)),
        }),
    }
}

/// Body of `GET /api/health/ready` when ready.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
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

/// The OpenAPI document as served, handed to [`openapi`] by the router (the
/// document is built from the route table, which names this handler).
#[derive(Debug, Clone, Copy)]
pub struct OpenApiDocument(pub &'static str);

/// `GET /api/openapi.json`
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object))
)]
pub async fn openapi(Extension(document): Extension<OpenApiDocument>) -> Response {
    super::conditional::json_bytes(document.0)
}
