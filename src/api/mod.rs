//! The HTTP API, and only HTTP: [`router`] builds it from the route table
//! ([`routes::ROUTES`]) over an [`AppState`]. It knows nothing of the Azure
//! Functions host or the migration; `crate::app` puts the pieces together.

use std::sync::Arc;

use axum::{Extension, Router, extract::DefaultBodyLimit, middleware, routing::get};

pub mod admit;
pub mod bench;
pub mod cache;
pub mod conditional;
pub mod context;
pub mod cors;
pub mod erase;
pub mod error;
pub mod export;
pub mod extract;
pub mod import;
pub mod legacy;
pub mod messages;
pub mod meta;
pub mod observe;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod search;
pub mod sessions;
pub mod state;
pub mod stream;
pub mod tree;
pub mod ui;

pub use error::ApiError;
pub use state::{ApiSettings, AppState};

/// The HTTP API over `state`: every route of the table under `/api/`, the
/// host's probe at `/`, the web app's start at `/api/ui/`, problem answers
/// for unknown routes and methods, and CORS when origins are allowed.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/", get(meta::probe))
        .route("/api/ui", get(ui::to_start))
        .route(ui::START, get(ui::start));
    for route in routes::ROUTES {
        let observed = observe::Observed::http(
            route.function,
            &route.method,
            &route.path(),
            state.settings.server_timing,
        );
        let mut method_router = route.method_router();
        // Inside Observe, so that refusals are observed (counted by status,
        // traced) like any answer.
        for gate in state.admission.gates(route.limit) {
            method_router = method_router.layer(admit::AdmitLayer(gate));
        }
        let method_router = method_router.layer(observe::ObserveLayer(observed));
        router = router.route(&route.path(), method_router);
    }
    if state.settings.bench_routes {
        router = router.route("/_bench/ceiling", get(bench::ceiling));
    }
    router = router
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed);
    // After the fallbacks, so that it sees the preflights they would refuse.
    if let Some(origins) = &state.settings.cors {
        let origins = Arc::new(origins.clone());
        router = router.layer(middleware::from_fn_with_state(origins, cors::middleware));
    }
    if let Some(timeout) = state.settings.limits.body_read_timeout {
        router = router.layer(admit::BodyDeadlineLayer(timeout));
    }
    router
        .layer(Extension(meta::OpenApiDocument(openapi::document_json())))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .with_state(state)
}
