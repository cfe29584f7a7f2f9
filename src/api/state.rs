//! What every handler shares: the store, the API's settings, and the caches
//! that live as long as the router.

use std::{sync::Arc, time::Duration};

use axum::http::HeaderMap;

use super::{ApiError, admit::Admission, bench, cache, cors::AllowedOrigins};
use crate::{
    auth::{self, AuthError, AuthMode},
    limits::LimitSettings,
    store::{DynLegacyEraser, DynSearchStore, DynStore, Owner},
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
    /// How long one erase request works before it answers with what it has
    /// done (`complete: false`; the next request continues).
    pub erase_budget: Duration,
    /// Largest accepted import file (`POST /api/chat/import`), in bytes.
    pub import_max_bytes: usize,
    /// Origins whose pages may call the API (`CORS_ALLOWED_ORIGINS`); `None`:
    /// no CORS answers at all.
    pub cors: Option<AllowedOrigins>,
    /// Answers carry a `Server-Timing` header (`SERVER_TIMING`).
    pub server_timing: bool,
    /// The limits under load and abuse (`MAX_*_IN_FLIGHT`,
    /// `USER_WRITE_*`, `BODY_READ_TIMEOUT_SECONDS`); all off by default
    /// here, on by default in [`crate::config::Config`].
    pub limits: LimitSettings,
}

/// Default [`ApiSettings::erase_budget`]: well inside the 230 s an HTTP
/// request may take behind Azure's front ends.
pub const DEFAULT_ERASE_BUDGET: Duration = Duration::from_secs(20);

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::None,
            max_body_bytes: 1024 * 1024,
            bench_routes: false,
            erase_budget: DEFAULT_ERASE_BUDGET,
            import_max_bytes: crate::config::DEFAULT_IMPORT_MAX_BYTES,
            cors: None,
            server_timing: true,
            limits: LimitSettings::off(),
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
    /// Erases users' documents in the legacy per-message store, when one is
    /// configured.
    pub legacy_eraser: Option<DynLegacyEraser>,
    /// API settings.
    pub settings: Arc<ApiSettings>,
    pub(super) renders: Arc<cache::RenderCache>,
    /// Rendered listings, by owner and query.
    pub(super) listings: Arc<cache::RenderCache<String>>,
    /// Rendered context answers, by owner, session and parameters.
    pub(super) contexts: Arc<cache::RenderCache<String>>,
    pub(super) bench: Arc<bench::Ceiling>,
    /// The limits' state (gates, the users' buckets).
    pub(super) admission: Arc<Admission>,
}

impl AppState {
    /// State over `store` with `settings`.
    pub fn new(store: DynStore, settings: ApiSettings) -> Self {
        Self {
            store,
            search: None,
            legacy_eraser: None,
            admission: Arc::new(Admission::new(&settings)),
            settings: Arc::new(settings),
            renders: Arc::default(),
            listings: Arc::new(cache::RenderCache::new(cache::LISTINGS_CACHE_BYTES)),
            contexts: Arc::new(cache::RenderCache::new(cache::LISTINGS_CACHE_BYTES)),
            bench: Arc::default(),
        }
    }

    /// The same state with search over `search` (the same data as `store`).
    pub fn with_search(mut self, search: DynSearchStore) -> Self {
        self.search = Some(search);
        self
    }

    /// The same state, erasing users from `legacy` too.
    pub fn with_legacy_eraser(mut self, legacy: DynLegacyEraser) -> Self {
        self.legacy_eraser = Some(legacy);
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
