//! What every handler shares: the store, the API's settings, and the caches
//! that live as long as the router.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::{ApiError, bench, cache, cors::AllowedOrigins};
use crate::{
    auth::{self, AuthError, AuthMode},
    store::{DynStore, Owner},
};

/// Settings the API itself needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where the user of a request comes from.
    pub auth_mode: AuthMode,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Serve `/_bench/*` routes used by the benchmark (never in production).
    pub bench_routes: bool,
    /// Origins whose pages may call the API (`CORS_ALLOWED_ORIGINS`); `None`:
    /// no CORS answers at all.
    pub cors: Option<AllowedOrigins>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::None,
            max_body_bytes: 1024 * 1024,
            bench_routes: false,
            cors: None,
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
    pub(super) renders: Arc<cache::RenderCache>,
    pub(super) bench: Arc<bench::Ceiling>,
}

impl AppState {
    /// State over `store` with `settings`.
    pub fn new(store: DynStore, settings: ApiSettings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            renders: Arc::default(),
            bench: Arc::default(),
        }
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
