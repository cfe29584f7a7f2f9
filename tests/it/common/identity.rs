//! The App Service managed-identity endpoint (`IDENTITY_ENDPOINT`), played
//! by a local server: the start-up tests make it refuse and then hand out
//! tokens; the telemetry tests check that Application Insights ingestion
//! gets its token from it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::loopback_listener;

/// What the tests give the App Service identity endpoint as its secret
/// header, and what it hands out as a token: neither may ever be logged
/// or answered.
pub const IDENTITY_SECRET: &str = "identity-header-secret-4c1f0b";
pub const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.access-token-7d2e.c2lnbmF0dXJl";
pub const CLIENT_ID: &str = "6f1c1b7e-2f4a-4d7e-9a53-1c2b3d4e5f60";

/// The App Service managed-identity protocol, as the platform serves it at
/// `IDENTITY_ENDPOINT`: `GET ?api-version=2019-08-01&resource=…&client_id=…`
/// with the `X-IDENTITY-HEADER` secret. Refuses (400, as it does while an
/// identity is not assigned yet) until told otherwise.
pub struct IdentityEndpoint {
    /// Its URL, for `IDENTITY_ENDPOINT`.
    pub url: String,
    /// While true it refuses tokens.
    pub refusing: Arc<AtomicBool>,
    /// The query of every request it got.
    pub asked: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

#[derive(Clone)]
struct IdentityState {
    refusing: Arc<AtomicBool>,
    asked: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn token(
    State(state): State<IdentityState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    state.asked.lock().unwrap().push(query.clone());
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(IDENTITY_SECRET)
    {
        return (StatusCode::UNAUTHORIZED, "missing X-IDENTITY-HEADER").into_response();
    }
    if state.refusing.load(Ordering::SeqCst) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "statusCode": 400,
                "message": "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
                "correlationId": "3f0d7c0e-1b2a-4c5d-8e9f-0a1b2c3d4e5f"
            })),
        )
            .into_response();
    }
    let expires_on = chrono::Utc::now().timestamp() + 3600;
    Json(json!({
        "access_token": ACCESS_TOKEN,
        "expires_on": expires_on.to_string(),
        "resource": query.get("resource"),
        "token_type": "Bearer",
        "client_id": query.get("client_id"),
    }))
    .into_response()
}

impl IdentityEndpoint {
    /// Serves on a free loopback port, refusing tokens until told otherwise.
    pub async fn start() -> Self {
        let listener = loopback_listener();
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
        let state = IdentityState {
            refusing: Arc::new(AtomicBool::new(true)),
            asked: Arc::default(),
        };
        let router = Router::new()
            .route("/msi/token", get(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            url,
            refusing: state.refusing,
            asked: state.asked,
        }
    }
}
