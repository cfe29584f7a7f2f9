//! The web app's files and CORS over HTTP, through the whole service (the
//! browser itself: [`crate::browser`]).

use axum::http::{Method, StatusCode};
use chat_sessions::{
    api::{ApiSettings, cors::AllowedOrigins},
    auth::AuthMode,
};

use crate::common::{TestApp, TestResponse};

const FRONTEND: &str = "http://localhost:5173";

fn with_cors(origins: &str) -> TestApp {
    TestApp::with_settings(ApiSettings {
        cors: Some(origins.parse::<AllowedOrigins>().unwrap()),
        ..ApiSettings::default()
    })
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> TestResponse {
    app.request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type,if-match")
        .send()
        .await
}

fn assert_no_cors(r: &TestResponse) {
    let cors: Vec<_> = r
        .headers
        .keys()
        .filter(|k| {
            k.as_str().starts_with("access-control-") || k.as_str() == "timing-allow-origin"
        })
        .collect();
    assert!(cors.is_empty(), "CORS headers {cors:?} on {r:?}");
}

#[tokio::test]
async fn the_app_is_served_with_a_strict_policy() {
    let app = TestApp::new();
    for (path, content_type) in [
        ("/api/ui/", "text/html; charset=utf-8"),
        ("/api/ui/index.html", "text/html; charset=utf-8"),
        ("/api/ui/sessions/session_abc", "text/html; charset=utf-8"),
        ("/api/ui/app.js", "text/javascript; charset=utf-8"),
        ("/api/ui/api.js", "text/javascript; charset=utf-8"),
        ("/api/ui/dom.js", "text/javascript; charset=utf-8"),
        ("/api/ui/branches.js", "text/javascript; charset=utf-8"),
        ("/api/ui/style.css", "text/css; charset=utf-8"),
        ("/api/ui/icon.svg", "image/svg+xml"),
    ] {
        let r = app.get(path).await.expect_status(StatusCode::OK);
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(!r.body.is_empty());
    }
    // A file the app does not have: a problem, not the page.
    let r = app.get("/api/ui/missing.js").await;
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    r.expect_problem(StatusCode::NOT_FOUND);
    // Only GET (and HEAD).
    app.request(Method::POST, "/api/ui/app.js")
        .send()
        .await
        .expect_problem(StatusCode::METHOD_NOT_ALLOWED);
}

/// The files the start page names, with their `?v=` hashes.
fn named_files(page: &str) -> Vec<String> {
    page.split('"')
        .filter(|s| s.starts_with("/api/ui/") && s.contains("?v="))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn files_are_compressed_as_the_client_accepts_and_cached_by_content_hash() {
    let app = TestApp::new();
    let page = app.get("/api/ui/").await.expect_status(StatusCode::OK);
    // The start page: always revalidated, so a new release shows at once.
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let text = String::from_utf8_lossy(&page.body).into_owned();
    let files = named_files(&text);
    for name in ["style.css", "app.js", "icon.svg"] {
        assert!(
            files
                .iter()
                .any(|f| f.starts_with(&format!("/api/ui/{name}?v="))),
            "{name} by its hash in {files:?}"
        );
    }
    let app_js = files.iter().find(|f| f.contains("app.js")).unwrap();

    for (accept, encoding) in [
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("br;q=0, gzip;q=1"), Some("gzip")),
        (None, None),
    ] {
        let mut request = app.request(Method::GET, app_js);
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        let r = request.send().await.expect_status(StatusCode::OK);
        assert_eq!(r.header("content-encoding"), encoding, "{accept:?}");
        assert!(r.header("vary").unwrap().contains("Accept-Encoding"));
        // By its current hash: for good.
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let plain = match encoding {
            Some("gzip") => {
                use std::io::Read as _;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&r.body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            Some("br") => {
                let mut out = Vec::new();
                brotli::BrotliDecompress(&mut &r.body[..], &mut out).unwrap();
                out
            }
            _ => r.body.to_vec(),
        };
        if encoding.is_some() {
            assert!(r.body.len() < plain.len() / 2, "{encoding:?} compresses");
        }
        assert!(
            String::from_utf8(plain)
                .unwrap()
                .contains("import * as api")
        );
    }
    // The start page is compressed too, and revalidates to a 304.
    let r = app
        .request(Method::GET, "/api/ui/")
        .header("accept-encoding", "br")
        .send()
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("content-encoding"), Some("br"));
    let etag = r.header("etag").unwrap().to_owned();
    let r = app
        .request(Method::GET, "/api/ui/sessions/session_1")
        .header("accept-encoding", "br")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect_status(StatusCode::NOT_MODIFIED);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r.header("content-security-policy").is_some());

    // Without the hash, or with an old one: served, but revalidated.
    for path in ["/api/ui/app.js", "/api/ui/app.js?v=0123456789abcdef"] {
        let r = app.get(path).await.expect_status(StatusCode::OK);
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert!(r.header("etag").is_some());
    }
    // Every module names the others by hash too, so none is fetched twice.
    let app_text = String::from_utf8_lossy(&app.get(app_js).await.body).into_owned();
    assert!(app_text.contains("'./api.js?v="), "{app_text:.200}");
    assert!(app_text.contains("'./message.js?v="));
}

#[tokio::test]
async fn the_page_knows_the_auth_mode() {
    let local = TestApp::new().get("/api/ui/").await;
    let text = String::from_utf8_lossy(&local.body).into_owned();
    assert!(text.contains(r#"<meta name="auth-mode" content="none">"#));
    let azure = TestApp::with_settings(ApiSettings {
        auth_mode: AuthMode::EasyAuth,
        ..ApiSettings::default()
    });
    // The files are served without a principal: they hold nothing of anyone's.
    let r = azure.get("/api/ui/").await.expect_status(StatusCode::OK);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains(r#"<meta name="auth-mode" content="easyauth">"#));
}

#[tokio::test]
async fn a_browser_at_the_root_goes_to_the_app_and_the_probe_stays_plain() {
    let app = TestApp::new();
    let r = app.get("/").await.expect_status(StatusCode::OK);
    assert_eq!(&r.body[..], b"ok");
    let r = app
        .request(Method::GET, "/")
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .expect_status(StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/api/ui/"));
    let r = app
        .get("/api/ui")
        .await
        .expect_status(StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.header("location"), Some("/api/ui/"));
}

#[tokio::test]
async fn without_the_setting_there_are_no_cors_headers() {
    let app = TestApp::new();
    let r = preflight(&app, "/api/chat/sessions", FRONTEND, "POST").await;
    assert_no_cors(&r);
    r.expect_problem(StatusCode::METHOD_NOT_ALLOWED);
    let r = app
        .request(Method::GET, "/api/chat/sessions")
        .header("origin", FRONTEND)
        .send()
        .await
        .expect_status(StatusCode::OK);
    assert_no_cors(&r);
}

#[tokio::test]
async fn an_allowed_origin_gets_the_preflight_with_the_routes_methods() {
    let app = with_cors(&format!("https://other.example, {FRONTEND}"));
    for (path, method, methods) in [
        ("/api/chat/sessions", "POST", "GET,POST"),
        ("/api/chat/sessions/session_1", "PUT", "GET,PUT,DELETE"),
        ("/api/chat/sessions/session_1/messages", "POST", "GET,POST"),
        ("/api/chat/history", "GET", "GET"),
    ] {
        let r = preflight(&app, path, FRONTEND, method)
            .await
            .expect_status(StatusCode::NO_CONTENT);
        assert_eq!(r.header("access-control-allow-origin"), Some(FRONTEND));
        let mut allowed: Vec<_> = r
            .header("access-control-allow-methods")
            .unwrap()
            .split(',')
            .collect();
        allowed.sort();
        let mut expected: Vec<_> = methods.split(',').collect();
        expected.sort();
        assert_eq!(allowed, expected, "{path}");
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("content-type,if-match,if-none-match,authorization")
        );
        assert_eq!(r.header("access-control-max-age"), Some("7200"));
        assert!(r.header("vary").unwrap().contains("origin"));
        assert!(r.body.is_empty());
    }
    // Not an API route: no preflight, the usual 404.
    let r = preflight(&app, "/api/nothing/here", FRONTEND, "GET").await;
    assert_no_cors(&r);
    r.expect_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_allowed_origin_reads_answers_and_errors_with_etag_and_location() {
    let app = with_cors(FRONTEND);
    let r = app
        .request(Method::POST, "/api/chat/sessions?user_id=u1")
        .header("origin", FRONTEND)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect_status(StatusCode::CREATED);
    assert_eq!(r.header("access-control-allow-origin"), Some(FRONTEND));
    // Its script and developer tools may read what the request cost.
    assert_eq!(r.header("timing-allow-origin"), Some(FRONTEND));
    assert!(r.header("server-timing").is_some());
    let exposed = r.header("access-control-expose-headers").unwrap();
    for name in ["etag", "location"] {
        assert!(exposed.split(',').any(|h| h.trim() == name), "{exposed}");
    }
    assert!(r.header("vary").unwrap().contains("origin"));
    let r = app
        .request(Method::GET, "/api/chat/sessions/nope?user_id=u1")
        .header("origin", FRONTEND)
        .send()
        .await;
    assert_eq!(r.header("access-control-allow-origin"), Some(FRONTEND));
    r.expect_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers_and_the_usual_answer() {
    let app = with_cors(FRONTEND);
    for origin in ["http://localhost:5174", "https://localhost:5173", "null"] {
        let r = preflight(&app, "/api/chat/sessions", origin, "POST").await;
        assert_no_cors(&r);
        r.expect_problem(StatusCode::METHOD_NOT_ALLOWED);
        let r = app
            .request(Method::GET, "/api/chat/sessions")
            .header("origin", origin)
            .send()
            .await
            .expect_status(StatusCode::OK);
        assert_no_cors(&r);
        // Caches must not serve it to the allowed origin.
        assert!(r.header("vary").unwrap().contains("origin"));
    }
    // No Origin at all (curl, same-origin GETs): as before.
    let r = app
        .get("/api/chat/sessions")
        .await
        .expect_status(StatusCode::OK);
    assert_no_cors(&r);
}

#[tokio::test]
async fn a_star_allows_any_origin() {
    let app = with_cors("*");
    let r = preflight(
        &app,
        "/api/chat/sessions",
        "https://anywhere.example",
        "POST",
    )
    .await
    .expect_status(StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = app
        .request(Method::GET, "/api/health")
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .expect_status(StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}
