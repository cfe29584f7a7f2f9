//! Cosmos DB requests and request units per API operation, measured on the
//! SDK's in-memory emulator (which charges RU by document size; queries are
//! charged a flat 1 RU there, so query RU is not meaningful). Also the seed's
//! comparison: the old one-document-per-message model.
//!
//!     cargo bench --bench cosmos_requests

#[path = "../tests/it/common/cosmos.rs"]
#[allow(dead_code)] // the integration tests use all of it, this bench a part
mod cosmos;

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use azure_data_cosmos::{FeedScope, Query};
use chat_sessions::{
    api::{self, ApiSettings, AppState},
    store::cosmos::{CosmosStore, MetricsSnapshot},
};
use futures::TryStreamExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

struct Bench {
    router: axum::Router,
    store: CosmosStore,
}

impl Bench {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, MetricsSnapshot) {
        let before = self.store.metrics();
        let mut request = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, self.store.metrics() - before)
    }
}

fn row(name: &str, m: MetricsSnapshot) {
    println!(
        "{name:<58} {:>3} requests  {:>8.2} RU",
        m.requests, m.request_units
    );
}

#[tokio::main]
async fn main() {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    let bench = Bench {
        router: api::router(AppState::new(
            Arc::new(store.clone()),
            ApiSettings::default(),
        )),
        store,
    };
    let content = "A typical chat message of about two hundred bytes: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim.";

    let (_, created, m) = bench
        .call(
            "POST",
            "/api/chat/sessions",
            Some(json!({ "user_id": "u1", "session_name": "bench" })),
        )
        .await;
    row("POST /api/chat/sessions (create)", m);
    let id = created["id"].as_str().unwrap().to_owned();
    let mut first_append = None;
    let mut all_appends = MetricsSnapshot::default();
    for i in 0..50 {
        let kind = if i % 2 == 0 { "user" } else { "assistant" };
        let (status, _, m) = bench
            .call(
                "POST",
                &format!("/api/chat/sessions/{id}/messages?user_id=u1"),
                Some(json!({ "content": content, "message_type": kind })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        first_append.get_or_insert(m);
        all_appends.requests += m.requests;
        all_appends.request_units += m.request_units;
        if i == 49 {
            row("POST …/messages (append to a 49-message session)", m);
        }
    }
    row(
        "POST …/messages (append to an empty session)",
        first_append.unwrap(),
    );
    row(
        "POST …/messages × 50 (building a 50-message session)",
        all_appends,
    );
    let (_, session, m) = bench
        .call("GET", &format!("/api/chat/sessions/{id}?user_id=u1"), None)
        .await;
    assert_eq!(session["message_count"], 50);
    row("GET /api/chat/sessions/{id} (50 messages, first read)", m);
    let (_, _, m) = bench
        .call("GET", &format!("/api/chat/sessions/{id}?user_id=u1"), None)
        .await;
    row(
        "GET /api/chat/sessions/{id} (50 messages, unchanged: 304)",
        m,
    );
    let (_, history, m) = bench
        .call(
            "GET",
            &format!("/api/chat/history?session_id={id}&user_id=u1"),
            None,
        )
        .await;
    assert_eq!(history.as_array().unwrap().len(), 50);
    row("GET /api/chat/history (50 messages)", m);
    for i in 0..99 {
        bench
            .call(
                "POST",
                "/api/chat/sessions",
                Some(json!({ "user_id": "u1", "session_name": format!("s{i}") })),
            )
            .await;
    }
    let (_, page, m) = bench
        .call("GET", "/api/chat/sessions?user_id=u1&limit=50", None)
        .await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 50);
    row("GET /api/chat/sessions (page of 50 of 100)", m);
    let token = page["continuation_token"].as_str().unwrap().to_owned();
    let (_, _, m) = bench
        .call(
            "GET",
            &format!("/api/chat/sessions?user_id=u1&limit=50&continuation_token={token}"),
            None,
        )
        .await;
    row("GET /api/chat/sessions (second page)", m);

    // A 10,000-message session (about 2.2 MB: sealed pages plus the newest
    // messages in the document), built through the migration's import.
    let long_id = chat_sessions::domain::SessionId::parse("s_long").unwrap();
    let user = chat_sessions::domain::UserId::parse("u1").unwrap();
    let messages: Vec<chat_sessions::domain::ChatMessage> = (0..10_000)
        .map(|i| chat_sessions::domain::ChatMessage {
            id: chat_sessions::domain::MessageId::parse(format!("m{i:05}")).unwrap(),
            content: content.to_owned(),
            message_type: chat_sessions::domain::MessageType::User,
            user_id: Some(user.clone()),
            metadata: Default::default(),
            created_at: chat_sessions::domain::Timestamp::parse(&format!(
                "2024-01-01T00:00:00.{i:06}Z"
            ))
            .unwrap(),
        })
        .collect();
    {
        use chat_sessions::store::MigrationStore as _;
        bench
            .store
            .import_messages(chat_sessions::store::SessionImport {
                id: long_id.clone(),
                user_id: Some(user),
                messages,
            })
            .await
            .unwrap();
    }
    let (_, tail, m) = bench
        .call(
            "GET",
            "/api/chat/sessions/s_long?user_id=u1&messages_limit=50",
            None,
        )
        .await;
    assert_eq!(tail["messages"].as_array().unwrap().len(), 50);
    row("GET …/s_long?messages_limit=50 (10,000 messages)", m);
    let (_, page, m) = bench
        .call(
            "GET",
            "/api/chat/sessions/s_long/messages?user_id=u1&limit=50",
            None,
        )
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 50);
    row("GET …/s_long/messages?limit=50 (newest page)", m);
    let (status, _, m) = bench
        .call(
            "POST",
            "/api/chat/sessions/s_long/messages?user_id=u1",
            Some(json!({ "content": content, "message_type": "user" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    row("POST …/s_long/messages (append to 10,000 messages)", m);
    let (_, whole, m) = bench
        .call("GET", "/api/chat/sessions/s_long?user_id=u1", None)
        .await;
    assert_eq!(whole["messages"].as_array().unwrap().len(), 10_001);
    row("GET …/s_long (full read, 10,001 messages)", m);

    // The old model: one document per message, partitioned by session.
    let legacy = client
        .database_client("chat")
        .container_client("chat_messages", None)
        .await
        .unwrap();
    let mut write_ru = 0.0;
    for i in 0..50 {
        let doc = json!({
            "id": format!("msg_{i}"), "session_id": "old_session", "user_id": "u1", "content": content,
            "message_type": if i % 2 == 0 { "user" } else { "assistant" }, "metadata": {},
            "created_at": format!("2024-01-01T12:00:{i:02}.000000Z"),
        });
        let r = legacy
            .create_item("old_session".to_owned(), &format!("msg_{i}"), &doc, None)
            .await
            .unwrap();
        write_ru += r.headers().request_charge().map_or(0.0, |c| c.value());
    }
    println!(
        "{:<58} {:>3} requests  {:>8.2} RU",
        "old model: write 50 messages (50 documents)", 50, write_ru
    );
    let mut read_ru = 0.0;
    for i in 0..50 {
        let r = legacy
            .read_item("old_session".to_owned(), &format!("msg_{i}"), None)
            .await
            .unwrap();
        read_ru += r.headers().request_charge().map_or(0.0, |c| c.value());
    }
    println!(
        "{:<58} {:>3} requests  {:>8.2} RU",
        "old model: history of 50 as 50 point reads", 50, read_ru
    );
    let query = Query::from("SELECT * FROM c WHERE c.session_id = @s ORDER BY c.created_at")
        .with_parameter("@s", "old_session")
        .unwrap();
    let mut pages = legacy
        .query_items::<Value>(query, FeedScope::partition("old_session".to_owned()), None)
        .await
        .unwrap()
        .into_pages();
    let (mut n, mut requests, mut ru) = (0, 0, 0.0);
    while let Some(page) = pages.try_next().await.unwrap() {
        requests += 1;
        ru += page.headers().request_charge().map_or(0.0, |c| c.value());
        n += page.items().len();
    }
    assert_eq!(n, 50);
    println!(
        "{:<58} {:>3} requests  {:>8.2} RU (queries: flat RU in the emulator)",
        "old model: history of 50 as one query", requests, ru
    );
}
