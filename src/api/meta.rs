//! Service endpoints: the host's probe, health, the OpenAPI document, and the
//! answers for unknown routes and methods.

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
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
    let mut response = document.0.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
