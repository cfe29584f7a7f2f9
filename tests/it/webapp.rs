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
