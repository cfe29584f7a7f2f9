//! The HTTP API: `app(state)` builds the whole router.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tower_http::trace::TraceLayer;

use crate::{
    auth::{self, AuthError, AuthMode},
    domain::SessionId,
    store::{DynMigrationStore, DynStore, ETag, Owner},
};

pub mod bench;
pub mod cache;
pub mod error;
pub mod extract;
pub mod legacy;
pub mod meta;
pub mod openapi;
pub mod routes;
pub mod sessions;

pub use error::ApiError;

/// Settings the API itself needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where the user of a request comes from.
    pub auth_mode: AuthMode,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Serve `/_bench/*` routes used by the benchmark (never in production).
    pub bench_routes: bool,
    /// Whether the `MigrationSweep` timer enqueues a migration run.
    pub migration_sweep_enabled: bool,
    /// How long one `MigrateChatSessions` invocation works before it hands
    /// the rest to a continuation message.
    pub migration_budget: std::time::Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::None,
            max_body_bytes: 1024 * 1024,
            bench_routes: false,
            migration_sweep_enabled: false,
            migration_budget: std::time::Duration::from_secs(240),
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The session store.
    pub store: DynStore,
    /// API settings.
    pub settings: Arc<ApiSettings>,
    renders: Arc<cache::RenderCache>,
    bench: Arc<bench::Ceiling>,
    /// Where the queue-triggered migration reads old messages, if anywhere.
    pub migration_source: Option<crate::migration::SourceSpec>,
    /// The same store as `store`, as the migration writes to it; set with
    /// `migration_source`.
    pub migration_store: Option<DynMigrationStore>,
}

impl AppState {
    /// State over `store` with `settings`.
    pub fn new(store: DynStore, settings: ApiSettings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            renders: Arc::default(),
            bench: Arc::default(),
            migration_source: None,
            migration_store: None,
        }
    }

    /// The same state with a legacy source for the migration function and
    /// the store it migrates into.
    pub fn with_migration_source(
        mut self,
        source: crate::migration::SourceSpec,
        store: DynMigrationStore,
    ) -> Self {
        self.migration_source = Some(source);
        self.migration_store = Some(store);
        self
    }

    /// The owner of a request, from the auth mode, the headers and the
    /// `user_id` given in the query and/or the body (which must agree).
    pub fn owner(
        &self,
        headers: &HeaderMap,
        query_user: Option<&str>,
        body_user: Option<&str>,
    ) -> Result<Owner, ApiError> {
        let requested = match (query_user, body_user) {
            // Asking as two users at once is asking for someone else's data.
            (Some(q), Some(b)) if q != b => {
                return Err(ApiError::Forbidden(
                    "user_id in the query and in the body name different users".into(),
                ));
            }
            (q, b) => q.or(b),
        };
        auth::resolve_owner(self.settings.auth_mode, headers, requested).map_err(|e| match e {
            AuthError::Unauthenticated => ApiError::Unauthorized(e.to_string()),
            AuthError::Forbidden => ApiError::Forbidden(e.to_string()),
            AuthError::Invalid(msg) => ApiError::Validation(msg),
        })
    }
}

/// The whole service: the HTTP API as the Functions host forwards it, plus
/// the `POST /<FunctionName>` invocations of the host's other triggers.
pub fn app(state: AppState) -> Router {
    let api = api_router(state.clone());
    api.clone().merge(crate::functions::router(api, state))
}

fn api_router(state: AppState) -> Router {
    let mut router = Router::new().route("/", get(meta::probe));
    for route in routes::ROUTES {
        router = router.route(&route.path(), route.method_router());
    }
    if state.settings.bench_routes {
        router = router.route("/_bench/ceiling", get(bench::ceiling));
    }
    router
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A JSON response with an optional `ETag`.
pub(crate) fn json_with_etag<T: Serialize>(
    status: StatusCode,
    body: &T,
    etag: Option<&ETag>,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(e.as_str()).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// An `If-Match` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IfMatch {
    Any,
    Tags(Vec<ETag>),
}

/// Reads `If-Match`. Lenient on purpose: a tag without quotes is taken as
/// that tag, and anything that names no current version (an empty or garbled
/// header, weak tags, which never match under strong comparison) simply fails
/// the condition with a 412. A write never proceeds on a header it could not
/// read.
fn parse_if_match(headers: &HeaderMap) -> Option<IfMatch> {
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for value in values {
        let text = String::from_utf8_lossy(value.as_bytes());
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                return Some(IfMatch::Any);
            }
            if !item.starts_with("W/") {
                tags.push(ETag::new(item));
            }
        }
    }
    Some(IfMatch::Tags(tags))
}

/// The version a write must match, from `If-Match`: `None` to write
/// unconditionally. With several tags, the current one is looked up once and
/// used if listed.
pub(crate) async fn write_precondition(
    state: &AppState,
    owner: &Owner,
    id: &SessionId,
    headers: &HeaderMap,
) -> Result<Option<ETag>, ApiError> {
    let stale =
        || ApiError::PreconditionFailed("If-Match does not match the session's ETag".into());
    match parse_if_match(headers) {
        None | Some(IfMatch::Any) => Ok(None),
        Some(IfMatch::Tags(tags)) => match tags.as_slice() {
            [] => Err(stale()),
            [one] => Ok(Some(one.clone())),
            many => {
                let current = state.store.get_session(owner, id).await?.etag;
                if many.contains(&current) {
                    Ok(Some(current))
                } else {
                    Err(stale())
                }
            }
        },
    }
}

/// The entity-tags of `If-None-Match` (weak ones stripped of `W/`, as
/// If-None-Match compares weakly); `*` is kept as is.
pub(crate) fn none_match_tags(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.trim().trim_start_matches("W/").to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}
