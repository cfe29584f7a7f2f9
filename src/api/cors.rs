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

use std::{str::FromStr, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::routes::ROUTES;

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

/// The origins allowed to call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin (answered `Access-Control-Allow-Origin: *`).
    Any,
    /// Exact origins (`scheme://host[:port]`), answered with the origin itself.
    List(Vec<HeaderValue>),
}

impl FromStr for AllowedOrigins {
    type Err = String;

    /// A comma-separated list of origins, or `*` alone.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entries: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err("CORS_ALLOWED_ORIGINS names no origin".into());
        }
        if entries.contains(&"*") {
            return match entries.len() {
                1 => Ok(Self::Any),
                _ => Err(
                    "CORS_ALLOWED_ORIGINS: `*` allows every origin; list no others with it".into(),
                ),
            };
        }
        entries
            .into_iter()
            .map(parse_origin)
            .collect::<Result<_, _>>()
            .map(Self::List)
    }
}

/// One origin as a browser sends it: `http` or `https`, a host, an optional
/// port, nothing after (a trailing `/` or a path would never match).
fn parse_origin(entry: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| {
        Err(format!(
            "CORS_ALLOWED_ORIGINS: {entry:?} is not an origin ({why}; e.g. http://localhost:5173)"
        ))
    };
    let lower = entry.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return bad("no scheme");
    };
    if scheme != "http" && scheme != "https" {
        return bad("the scheme must be http or https");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return bad("only scheme://host[:port], no path, no trailing slash");
    }
    HeaderValue::from_str(&lower).or_else(|_| bad("not a valid header value"))
}

impl AllowedOrigins {
    fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.contains(origin),
        }
    }

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
    fn parses_exact_origins_or_a_lone_star() {
        assert_eq!("*".parse(), Ok(AllowedOrigins::Any));
        assert_eq!(
            " http://localhost:5173 , HTTPS://App.Example.com ,".parse(),
            Ok(AllowedOrigins::List(vec![
                HeaderValue::from_static("http://localhost:5173"),
                HeaderValue::from_static("https://app.example.com"),
            ]))
        );
        for bad in [
            "",
            " , ",
            "*,http://a.example",
            "localhost:5173",
            "ftp://a.example",
            "http://a.example/",
            "http://a.example/app",
            "http://",
            "http://user@a.example",
        ] {
            let err = bad.parse::<AllowedOrigins>().unwrap_err();
            assert!(err.contains("CORS_ALLOWED_ORIGINS"), "{bad:?}: {err}");
        }
    }

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
        assert!(route_methods("/api/nope").is_empty());
        assert!(route_methods("/").is_empty());
    }
}
