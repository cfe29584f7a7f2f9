//! The built-in web app: plain HTML, CSS and JavaScript modules (the files
//! in `src/api/ui/`), embedded in the binary at build time and served under
//! `/api/ui/`, which in Azure is the function `WebApp` (route `ui/{*path}`).
//! No build step, nothing fetched from elsewhere at run time.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles
//! only from these files (no inline script), no plugins, no framing, and
//! Trusted Types required, so the page cannot turn a string into HTML even
//! by mistake; the app renders every name and message as text.

//! The files are prepared at build time by `build.rs`: every reference from
//! one file to another carries `?v=<hash of that file>`, and each file is
//! stored as it is, gzipped and in Brotli. A URL with the current hash is
//! cached for good (`immutable`); the start page, and any URL without the
//! current hash, is revalidated on every use (`no-cache` with an `ETag`), so
//! a new release is picked up at once and a returning visitor downloads
//! nothing but data.

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
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

/// `Cache-Control` of a URL that names one version of a file.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One version of a file, in every encoding it is served in.
struct Body {
    /// The start of the SHA-256 of `identity`, in hex: the `v` of its URLs.
    hash: &'static str,
    identity: &'static [u8],
    gzip: &'static [u8],
    brotli: &'static [u8],
}

/// One file of the app (the start page apart).
struct File {
    /// Its path under `/api/ui/`.
    name: &'static str,
    content_type: &'static str,
    body: Body,
}

// `FILES` and `START_PAGES`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/ui/files.rs"));

/// `GET /api/ui/{*path}`
#[utoipa::path(
    get,
    path = "/api/ui/{path}",
    tag = "web app",
    summary = "The built-in web app",
    description = "The app's files, and its start page for any path without a file extension (its deep links, e.g. `sessions/{session_id}`). `/api/ui/` is the start page. Files are served compressed when `Accept-Encoding` allows (`br`, `gzip`); a file asked for with its current `v` is cached for good, anything else is revalidated (`ETag`, `If-None-Match`).",
    params(
        ("path" = String, Path, description = "A file of the app, or a page of it."),
        ("v" = Option<String>, Query, description = "The file's version, as the start page names it: with the current one the answer may be cached for good."),
    ),
    responses(
        (status = 200, description = "A file of the app.", content(
            ("text/html"),
            ("text/css"),
            ("text/javascript"),
            ("image/svg+xml"),
        )),
        (status = 304, description = "Unchanged since the ETag in If-None-Match."),
    )
)]
pub async fn file(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(path): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    serve(&path, query.as_deref(), &headers, state.settings.auth_mode)
}

/// `GET /api/ui/`: the start page.
pub async fn start(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve("", None, &headers, state.settings.auth_mode)
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

/// The encodings a file is stored in, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    /// The best encoding `Accept-Encoding` allows (identity when absent).
    fn negotiate(headers: &HeaderMap) -> Self {
        let mut brotli = false;
        let mut gzip = false;
        let mut star = false;
        for item in headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            // `q=0` refuses a coding.
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if refused {
                continue;
            }
            match coding.as_str() {
                "br" => brotli = true,
                "gzip" | "x-gzip" => gzip = true,
                "*" => star = true,
                _ => {}
            }
        }
        if brotli || star {
            Self::Brotli
        } else if gzip {
            Self::Gzip
        } else {
            Self::Identity
        }
    }
}

fn serve(path: &str, query: Option<&str>, headers: &HeaderMap, auth_mode: AuthMode) -> Response {
    // A page of the app (no extension) is the start page; its script reads
    // the path.
    let last = path.rsplit('/').next().unwrap_or_default();
    let (content_type, body, cache) = if !last.contains('.') || path == "index.html" {
        let mode = match auth_mode {
            AuthMode::None => "none",
            AuthMode::EasyAuth => "easyauth",
        };
        let (_, body) = START_PAGES
            .iter()
            .find(|(m, _)| *m == mode)
            .expect("a start page per auth mode");
        ("text/html; charset=utf-8", body, "no-cache")
    } else if let Some(file) = FILES.iter().find(|f| f.name == path) {
        let current = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .any(|pair| pair.strip_prefix("v=") == Some(file.body.hash));
        // Any other `v` (an older page's) gets this version, revalidated.
        let cache = if current { IMMUTABLE } else { "no-cache" };
        (file.content_type, &file.body, cache)
    } else {
        let mut response =
            ApiError::NotFound(format!("the web app has no file {path:?}")).into_response();
        secure(response.headers_mut());
        return response;
    };

    // The smallest encoding the client takes.
    let (encoding, bytes) = match Encoding::negotiate(headers) {
        Encoding::Brotli if body.brotli.len() < body.identity.len() => {
            (Encoding::Brotli, body.brotli)
        }
        Encoding::Brotli | Encoding::Gzip if body.gzip.len() < body.identity.len() => {
            (Encoding::Gzip, body.gzip)
        }
        _ => (Encoding::Identity, body.identity),
    };
    // One tag per representation: the bytes differ per encoding.
    let etag = match encoding {
        Encoding::Brotli => format!("\"{}-br\"", body.hash),
        Encoding::Gzip => format!("\"{}-gz\"", body.hash),
        Encoding::Identity => format!("\"{}\"", body.hash),
    };
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
        match encoding {
            Encoding::Brotli => r
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br")),
            Encoding::Gzip => r
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            Encoding::Identity => None,
        };
        r
    };
    let out = response.headers_mut();
    secure(out);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    response
}

/// The headers of every answer under `/api/ui/`.
fn secure(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> &'static str {
        std::str::from_utf8(START_PAGES[0].1.identity).unwrap()
    }

    #[test]
    fn every_file_is_referenced_by_its_version_and_the_page_loads_no_inline_script() {
        let page = page();
        assert!(page.contains(r#"<meta name="auth-mode" content="none">"#));
        let scripts: String = FILES
            .iter()
            .filter(|f| f.name.ends_with(".js"))
            .map(|f| std::str::from_utf8(f.body.identity).unwrap())
            .collect();
        for file in FILES {
            let hash = file.body.hash;
            assert!(
                page.contains(&format!("/api/ui/{}?v={hash}", file.name))
                    || scripts.contains(&format!("./{}?v={hash}", file.name)),
                "{} is never loaded by its version",
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
            "DOMParser",
            "createContextualFragment",
        ] {
            assert!(
                !scripts.contains(forbidden),
                "{forbidden} in the app's scripts"
            );
        }
    }

    #[test]
    fn the_start_page_preloads_every_module() {
        // So that a cold load fetches the modules at once, not one level of
        // imports after another.
        let page = page();
        for file in FILES
            .iter()
            .filter(|f| f.name.ends_with(".js") && f.name != "app.js")
        {
            let link = format!(
                r#"<link rel="modulepreload" href="/api/ui/{}?v={}">"#,
                file.name, file.body.hash
            );
            assert!(page.contains(&link), "{} is not preloaded", file.name);
        }
    }

    #[test]
    fn the_encodings_decode_to_the_file() {
        use std::io::Read as _;
        for body in FILES
            .iter()
            .map(|f| &f.body)
            .chain(START_PAGES.iter().map(|(_, b)| b))
        {
            let mut gz = Vec::new();
            flate2::read::GzDecoder::new(body.gzip)
                .read_to_end(&mut gz)
                .unwrap();
            assert_eq!(gz, body.identity);
            let mut br = Vec::new();
            brotli::BrotliDecompress(&mut &body.brotli[..], &mut br).unwrap();
            assert_eq!(br, body.identity);
        }
    }

    #[test]
    fn accept_encoding_is_negotiated() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            Encoding::negotiate(&h)
        };
        assert_eq!(Encoding::negotiate(&HeaderMap::new()), Encoding::Identity);
        assert_eq!(with("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(with("gzip"), Encoding::Gzip);
        assert_eq!(with("br;q=0, gzip;q=0.5"), Encoding::Gzip);
        assert_eq!(with("identity"), Encoding::Identity);
        assert_eq!(with("*"), Encoding::Brotli);
    }

    #[test]
    fn pages_are_the_start_page_and_unknown_files_are_404() {
        let none = HeaderMap::new();
        for path in ["", "sessions/session_1", "index.html"] {
            let r = serve(path, None, &none, AuthMode::None);
            assert_eq!(r.status(), 200, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        }
        let r = serve("app.js", None, &none, AuthMode::None);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = serve("../Cargo.toml", None, &none, AuthMode::None);
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
