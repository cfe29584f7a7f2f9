//! What every handler shares: the store, the API's settings, and the caches
//! that live as long as the router.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::{ApiError, bench, cache};
use crate::{
    auth::{self, AuthError, AuthMode},
    store::{DynSearchStore, DynStore, Owner},
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
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::None,
            max_body_bytes: 1024 * 1024,
            bench_routes: false,
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The session store.
    pub store: DynStore,
    /// Search over the same store (set by [`with_search`](Self::with_search)).
    pub search: Option<DynSearchStore>,
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
            search: None,
            settings: Arc::new(settings),
            renders: Arc::default(),
            bench: Arc::default(),
        }
    }

    /// The same state with search over `search` (the same data as `store`).
    pub fn with_search(mut self, search: DynSearchStore) -> Self {
        self.search = Some(search);
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
