//! The built-in web app: plain HTML, CSS and JavaScript modules (the files
//! in `src/api/ui/`), embedded in the binary at build time and served under
//! `/api/ui/`, which in Azure is the function `WebApp` (route `ui/{*path}`).
//! No build step, nothing fetched from elsewhere at run time.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles
//! only from these files (no inline script), no plugins, no framing, and
//! Trusted Types required, so the page cannot turn a string into HTML even
//! by mistake; the app renders every name and message as text.

use std::borrow::Cow;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
};

use super::{ApiError, AppState, extract::ApiPath};
use crate::auth::AuthMode;

/// Where the app starts.
pub const START: &str = "/api/ui/";

/// The `Content-Security-Policy` of every answer under `/api/ui/`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; object-src 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file.
struct File {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! files {
    ($($name:literal: $content_type:literal,)*) => {
        &[$(File {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("ui/", $name)),
        },)*]
    };
}

/// The app's files, as `src/api/ui/` holds them.
const FILES: &[File] = files! {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
};

/// The marker in `index.html` replaced by the auth mode, which the page
/// reads to know whether it names the user (`none`) or the platform does.
const AUTH_MODE_MARKER: &str = "{{auth_mode}}";

/// `GET /api/ui/{*path}`
#[utoipa::path(
    get,
    path = "/api/ui/{path}",
    tag = "web app",
    summary = "The built-in web app",
    description = "The app's files, and its start page for any path without a file extension (its deep links, e.g. `sessions/{session_id}`). `/api/ui/` is the start page.",
    params(("path" = String, Path, description = "A file of the app, or a page of it.")),
    responses((status = 200, description = "A file of the app.", content(
        ("text/html"),
        ("text/css"),
        ("text/javascript"),
        ("image/svg+xml"),
    )))
)]
pub async fn file(State(state): State<AppState>, ApiPath(path): ApiPath<String>) -> Response {
    serve(&path, state.settings.auth_mode)
}

/// `GET /api/ui/`: the start page.
pub async fn start(State(state): State<AppState>) -> Response {
    serve("", state.settings.auth_mode)
}

/// `GET /api/ui`: to `/api/ui/`, so the page's relative links resolve.
pub async fn to_start() -> Redirect {
    Redirect::permanent(START)
}

/// Whether a request to `/` comes from a browser (which is sent to the app)
/// rather than the Functions host's probe.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

fn serve(path: &str, auth_mode: AuthMode) -> Response {
    // A page of the app (no extension) is the start page; its script reads
    // the path.
    let last = path.rsplit('/').next().unwrap_or_default();
    let name = if last.contains('.') {
        path
    } else {
        "index.html"
    };
    let mut response = match FILES.iter().find(|f| f.name == name) {
        Some(file) if file.name == "index.html" => {
            let mode = match auth_mode {
                AuthMode::None => "none",
                AuthMode::EasyAuth => "easyauth",
            };
            let html = String::from_utf8_lossy(file.body).replace(AUTH_MODE_MARKER, mode);
            ([(header::CONTENT_TYPE, file.content_type)], html).into_response()
        }
        Some(file) => (
            [(header::CONTENT_TYPE, file.content_type)],
            Cow::Borrowed(file.body),
        )
            .into_response(),
        None => ApiError::NotFound(format!("the web app has no file {name:?}")).into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Always revalidated: a new binary brings new files under the same names.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_referenced_and_the_page_loads_no_inline_script() {
        let page = std::str::from_utf8(FILES[0].body).unwrap();
        assert_eq!(FILES[0].name, "index.html");
        assert!(page.contains(AUTH_MODE_MARKER));
        let scripts: String = FILES
            .iter()
            .filter(|f| f.name.ends_with(".js"))
            .map(|f| std::str::from_utf8(f.body).unwrap())
            .collect();
        for file in &FILES[1..] {
            assert!(
                page.contains(&format!("/api/ui/{}", file.name))
                    || scripts.contains(&format!("./{}", file.name)),
                "{} is never loaded",
                file.name
            );
        }
        // Every <script> has a src; no on…= handlers; no HTML from strings.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script type=\"module\" src=").count()
        );
        let handler = page.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "an inline handler: on{handler:?}");
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "document.write",
        ] {
            assert!(
                !scripts.contains(forbidden),
                "{forbidden} in the app's scripts"
            );
        }
    }

    #[test]
    fn pages_are_the_start_page_and_unknown_files_are_404() {
        for path in ["", "sessions/session_1", "index.html"] {
            let r = serve(path, AuthMode::None);
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
        }
        let r = serve("app.js", AuthMode::None);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = serve("../Cargo.toml", AuthMode::None);
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
