//! Requests and RU of each API operation, through the HTTP router, for
//! sessions of 10, 100 and 1,000 typical messages.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use chat_sessions::{
    api::{self, ApiSettings, AppState},
    store::cosmos::CosmosStore,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{Cost, measure};

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    if_none_match: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(etag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn row(operation: &str, messages: usize, cost: Cost) {
    println!(
        "| {operation} | {messages} | {:.1} | {:.2} | {:.2} |",
        cost.requests, cost.model_ru, cost.emulator_ru
    );
}

/// One table: every operation on sessions of 10, 100 and 1,000 messages.
pub async fn run(store: &CosmosStore, content: &str) {
    let router = api::router(AppState::new(
        Arc::new(store.clone()),
        ApiSettings::default(),
    ));
    println!("## API operations (HTTP router, emulator, default seal policy)\n");
    println!("| Operation | Messages | Requests | RU (published table) | RU (emulator) |");
    println!("|---|---:|---:|---:|---:|");
    for n in [10usize, 100, 1000] {
        let user = format!("api_{n}");
        // Nine other sessions, so that the listing has a page to show.
        for i in 0..9 {
            let (status, _, _) = call(
                &router,
                "POST",
                "/api/chat/sessions",
                Some(json!({ "user_id": user, "session_name": format!("other {i}") })),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let ((status, _, created), cost) = measure(
            store,
            call(
                &router,
                "POST",
                "/api/chat/sessions",
                Some(json!({ "user_id": user, "session_name": "bench" })),
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        row("`POST /api/chat/sessions` (create)", 0, cost);
        let id = created["id"].as_str().unwrap().to_owned();
        let mut appends = Vec::new();
        for i in 0..n {
            let kind = if i.is_multiple_of(2) {
                "user"
            } else {
                "assistant"
            };
            let ((status, _, _), cost) = measure(
                store,
                call(
                    &router,
                    "POST",
                    &format!("/api/chat/sessions/{id}/messages?user_id={user}"),
                    Some(json!({ "content": content, "message_type": kind })),
                    None,
                ),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            appends.push(cost);
        }
        row(
            "`POST …/messages` (append; mean of the last 10)",
            n,
            Cost::mean(&appends[n - 10..]),
        );
        let session_uri = format!("/api/chat/sessions/{id}?user_id={user}");
        let ((status, headers, session), cost) =
            measure(store, call(&router, "GET", &session_uri, None, None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(session["messages"].as_array().unwrap().len(), n);
        row("`GET …/sessions/{id}` (all messages)", n, cost);
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let ((status, _, _), cost) =
            measure(store, call(&router, "GET", &session_uri, None, Some(&etag))).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        row("`GET …/sessions/{id}` unchanged (304)", n, cost);
        let ((_, _, tail), cost) = measure(
            store,
            call(
                &router,
                "GET",
                &format!("{session_uri}&messages_limit=50"),
                None,
                None,
            ),
        )
        .await;
        assert_eq!(tail["messages"].as_array().unwrap().len(), n.min(50));
        row("`GET …/sessions/{id}?messages_limit=50`", n, cost);
        let ((_, _, page), cost) = measure(
            store,
            call(
                &router,
                "GET",
                &format!("/api/chat/sessions/{id}/messages?user_id={user}&limit=50"),
                None,
                None,
            ),
        )
        .await;
        assert_eq!(page["messages"].as_array().unwrap().len(), n.min(50));
        row("`GET …/messages?limit=50` (newest page)", n, cost);
        let ((_, _, history), cost) = measure(
            store,
            call(
                &router,
                "GET",
                &format!("/api/chat/history?session_id={id}&user_id={user}"),
                None,
                None,
            ),
        )
        .await;
        assert_eq!(history.as_array().unwrap().len(), n);
        row("`GET /api/chat/history`", n, cost);
        let ((_, _, list), cost) = measure(
            store,
            call(
                &router,
                "GET",
                &format!("/api/chat/sessions?user_id={user}&limit=50"),
                None,
                None,
            ),
        )
        .await;
        assert_eq!(list["sessions"].as_array().unwrap().len(), 10);
        row("`GET /api/chat/sessions` (10 sessions; query)", n, cost);
    }
    println!();
}
