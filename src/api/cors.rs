//! CORS, so that a frontend on another origin may call the API from a
//! browser (`CORS_ALLOWED_ORIGINS`). tower-http's [`CorsLayer`] writes the
//! headers; this module decides when it applies: only to requests from an
//! allowed origin, with the methods of the route asked for. A request from
//! any other origin (or none) is served exactly as without CORS, so the
//! browser refuses it, as it should.
//!
//! In Azure the platform answers CORS before the request reaches this binary
//! (the site's CORS settings, `corsAllowedOrigins` in `infra/`); this is for
//! `chat-sessions serve` on its own.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::routes::ROUTES;
pub use crate::origins::AllowedOrigins;

/// How long a browser may cache a preflight answer. Chromium caps it at two
/// hours, Firefox at a day.
pub const MAX_AGE: Duration = Duration::from_secs(7200);

/// The request headers the API reads, allowed on cross-origin requests.
pub const ALLOWED_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::AUTHORIZATION,
];

/// The response headers scripts on an allowed origin may read: `ETag` (for
/// `If-Match`), `Location` (of a created session), `Retry-After` (of a 503)
/// and `Content-Disposition` (the file name of an export).
pub const EXPOSED_HEADERS: [HeaderName; 4] = [
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
    header::CONTENT_DISPOSITION,
];

/// `Timing-Allow-Origin` (not among the `http` crate's constants).
const TIMING_ALLOW_ORIGIN: HeaderName = HeaderName::from_static("timing-allow-origin");

impl AllowedOrigins {
    /// tower-http's layer for a route accepting `methods`.
    fn layer(&self, methods: Vec<Method>) -> CorsLayer {
        let origin = match self {
            Self::Any => AllowOrigin::any(),
            Self::List(list) => AllowOrigin::list(list.iter().cloned()),
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(MAX_AGE)
    }
}

/// The methods of the table's route(s) at `path`; empty for a path that is
/// not an API route.
fn route_methods(path: &str) -> Vec<Method> {
    ROUTES
        .iter()
        .filter(|r| r.matches(path))
        .map(|r| r.method.clone())
        .collect()
}

/// The middleware (see the module's documentation). A preflight (`OPTIONS`
/// with `Access-Control-Request-Method`) of an API route from an allowed
/// origin is answered here, 204 with the route's methods; any other request
/// from an allowed origin gets `Access-Control-Allow-Origin`,
/// `Timing-Allow-Origin` and the exposed headers on its usual answer. Every
/// answer varies by `Origin`.
pub async fn middleware(
    State(origins): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| origins.allows(o));
    let is_options = request.method() == Method::OPTIONS;
    let preflight = is_options
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let methods = route_methods(request.uri().path());
    if !allowed || (is_options && !preflight) || (preflight && methods.is_empty()) {
        let mut response = next.run(request).await;
        // Shared caches must not hand this answer to an allowed origin.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        return response;
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    let Ok(mut response) = origins.layer(methods).layer(next).oneshot(request).await;
    if preflight {
        *response.status_mut() = StatusCode::NO_CONTENT;
    } else if let Some(origin) = origin {
        // So that the page's script and developer tools may read the
        // answer's `Server-Timing`.
        response.headers_mut().insert(TIMING_ALLOW_ORIGIN, origin);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_has_its_methods() {
        assert_eq!(
            route_methods("/api/chat/sessions"),
            [Method::GET, Method::POST]
        );
        assert_eq!(
            route_methods("/api/chat/sessions/session_1"),
            [Method::GET, Method::PUT, Method::DELETE]
        );
        assert_eq!(
            route_methods("/api/chat/sessions/session_1/messages/msg_1"),
            [Method::PATCH, Method::DELETE]
        );
        assert!(route_methods("/api/nope").is_empty());
        assert!(route_methods("/").is_empty());
    }
}
