//! The Azure Functions custom-handler protocol for everything that is not a
//! forwarded HTTP request, and only that: the protocol types
//! ([`protocol`]), HTTP invocations when forwarding is off ([`http`]), and
//! the migration's queue and timer functions ([`migration`], messages in
//! [`queue`]) and the retention timer ([`retention`]).
//!
//! The host posts `{"Data":{…},"Metadata":{…}}` to `/<FunctionName>` and
//! expects `{"Outputs":{…},"Logs":[…],"ReturnValue":…}`. A non-2xx answer
//! fails the invocation: a queue message is then retried and, after
//! `maxDequeueCount` (host.json), moved to `<queue>-poison`.
//!
//! HTTP functions normally arrive forwarded as-is (`enableForwardingHttpRequest`
//! in host.json); should forwarding be off, their invocation payloads are
//! translated into ordinary requests to the same API router, so the app works
//! either way.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::DefaultBodyLimit, routing::post};

use crate::{
    api::{
        observe::{ObserveLayer, Observed},
        routes::ROUTES,
    },
    migration::SourceSpec,
    retention::RetentionPolicy,
    store::DynMigrationStore,
};

pub mod http;
pub mod migration;
pub mod protocol;
pub mod queue;
pub mod retention;

pub use protocol::{
    CONTINUATION_BINDING, HTTP_OUTPUT_BINDING, HTTP_TRIGGER_BINDING, InvocationRequest,
    InvocationResponse, MIGRATE_FUNCTION, MalformedMessage, QUEUE_TRIGGER_BINDING,
    RETENTION_FUNCTION, SWEEP_FUNCTION,
};

/// Settings of the non-HTTP functions.
#[derive(Debug, Clone)]
pub struct FunctionsSettings {
    /// Largest HTTP request body the API accepts; an invocation envelope may
    /// carry one (twice, when the host also parsed it) plus its metadata.
    pub max_body_bytes: usize,
    /// Whether the `MigrationSweep` timer enqueues a migration run.
    pub migration_sweep_enabled: bool,
    /// How long one `MigrateChatSessions` invocation works before it hands
    /// the rest to a continuation message.
    pub migration_budget: Duration,
    /// The retention rules the `RetentionSweep` timer applies.
    pub retention: RetentionPolicy,
    /// Whether the `RetentionSweep` timer applies them.
    pub retention_sweep_enabled: bool,
    /// How long one `RetentionSweep` invocation works; the next one goes on.
    pub retention_budget: Duration,
}

impl Default for FunctionsSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            migration_sweep_enabled: false,
            migration_budget: Duration::from_secs(240),
            retention: RetentionPolicy::default(),
            retention_sweep_enabled: false,
            retention_budget: Duration::from_secs(240),
        }
    }
}

/// What the migration functions share.
#[derive(Debug, Clone)]
pub struct FunctionsState {
    /// Where sessions are written.
    pub store: DynMigrationStore,
    /// Where the queue-triggered migration reads old messages, if anywhere
    /// (set once the store is connected, for the legacy Cosmos container).
    pub migration_source: Arc<OnceLock<SourceSpec>>,
    /// Settings.
    pub settings: Arc<FunctionsSettings>,
}

impl FunctionsState {
    /// State over `store`, with no legacy source.
    pub fn new(store: DynMigrationStore, settings: FunctionsSettings) -> Self {
        Self {
            store,
            migration_source: Arc::default(),
            settings: Arc::new(settings),
        }
    }

    /// The same state with a legacy source for the migration function.
    pub fn with_migration_source(self, source: SourceSpec) -> Self {
        self.with_pending_migration_source(Arc::new(OnceLock::from(source)))
    }

    /// The same state with a legacy source that is set once known.
    pub fn with_pending_migration_source(mut self, source: Arc<OnceLock<SourceSpec>>) -> Self {
        self.migration_source = source;
        self
    }
}

/// The routes the host invokes: one per function, `POST /<FunctionName>`.
/// `api` is the finished HTTP router that non-forwarded requests go to.
pub fn router(api: Router, state: FunctionsState) -> Router {
    let envelope_limit = state.settings.max_body_bytes.saturating_mul(2) + 64 * 1024;
    let observed = |function: &'static str, trigger: &'static str| {
        ObserveLayer(Observed::invocation(function, trigger))
    };
    let mut router = Router::new()
        .route(
            &format!("/{MIGRATE_FUNCTION}"),
            post(migration::migrate).layer(observed(MIGRATE_FUNCTION, "pubsub")),
        )
        .route(
            &format!("/{SWEEP_FUNCTION}"),
            post(migration::sweep).layer(observed(SWEEP_FUNCTION, "timer")),
        )
        .route(
            &format!("/{RETENTION_FUNCTION}"),
            post(retention::sweep).layer(observed(RETENTION_FUNCTION, "timer")),
        )
        .with_state(state);
    for route in ROUTES {
        let api = api.clone();
        router = router.route(
            &format!("/{}", route.function),
            post(move |body: Bytes| http::invoke(api, body)),
        );
    }
    router.layer(DefaultBodyLimit::max(envelope_limit))
}
