//! Sessions that outgrow one Cosmos DB document: their oldest messages move
//! into sealed pages. Every message stays readable exactly once, in order,
//! through GET session, the messages pager and the legacy history; no stored
//! document passes the threshold; concurrent appends across a seal lose and
//! duplicate nothing; deleting a session deletes its pages. Run on the local
//! Cosmos-compatible server and on the SDK's emulator (and the API part on
//! the embedded store too, which stores messages its own way).

use std::{collections::HashSet, sync::Arc};

use axum::http::StatusCode;
use azure_data_cosmos::ContainerClient;
use chat_sessions::{
    api::ApiSettings,
    store::{
        DynStore,
        cosmos::{CosmosStore, SealPolicy},
    },
};
use serde_json::{Value, json};

use crate::common::{
    self, Guard, TestApp,
    cosmos::{self, partition_docs},
    json::texts,
    sqlite_store,
};

/// A threshold of the tests' own, with messages of about 2 KB; the
/// mechanism is the same at any threshold.
const THRESHOLD: usize = 64 * 1024;

fn policy() -> SealPolicy {
    SealPolicy {
        max_bytes: THRESHOLD,
        page_bytes: SealPolicy::page_bytes_for(THRESHOLD),
        max_messages: None,
    }
}

fn ids(messages: &Value) -> Vec<&str> {
    texts(messages, "id")
}

/// Grows a session to `count` messages of ~2 KB through the API and checks
/// every way of reading it.
async fn grow_and_read(app: &TestApp, user: &str, count: usize) -> String {
    let id = app.create_session(user).await;
    let filler = "x".repeat(2000);
    let mut expected = Vec::new();
    for i in 0..count {
        let mid = format!("msg_{i:05}");
        app.post(
            &format!("/api/chat/sessions/{id}/messages?user_id={user}"),
            json!({ "id": mid, "content": format!("{i} {filler}"), "message_type": "user" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
        expected.push(mid);
    }
    let session = app
        .get_ok_json(&format!("/api/chat/sessions/{id}?user_id={user}"))
        .await;
    assert_eq!(session["message_count"], count);
    assert_eq!(
        ids(&session["messages"]),
        expected,
        "GET session: each message once, in order"
    );
    let history = app
        .get_json(&format!("/api/chat/history?session_id={id}&user_id={user}"))
        .await;
    assert_eq!(ids(&history), expected, "legacy history");
    let pages = app.messages_paged(&id, user, 200).await;
    let mut paged = ids(&pages);
    paged.reverse();
    assert_eq!(paged, expected, "pager, newest first");
    let tail = app
        .get_json(&format!(
            "/api/chat/sessions/{id}?user_id={user}&messages_limit=50"
        ))
        .await;
    assert_eq!(ids(&tail["messages"]), expected[count - 50..].to_vec());
    assert_eq!(tail["message_count"], count);
    id
}

async fn check_sealed_storage(
    container: &ContainerClient,
    user: &str,
    session_id: &str,
    count: usize,
) {
    let docs = partition_docs(container, user).await;
    let mut seen = HashSet::new();
    let mut pages = 0;
    for doc in &docs {
        let size = doc.to_string().len();
        assert!(
            size <= THRESHOLD,
            "{} is {size} bytes, over the threshold",
            doc["id"]
        );
        if doc["doc_type"] == "session_page" {
            pages += 1;
            assert_eq!(doc["session_id"], session_id);
        }
        for m in doc["messages"].as_array().into_iter().flatten() {
            assert!(
                seen.insert(m["id"].as_str().unwrap().to_owned()),
                "a message in two places"
            );
        }
    }
    assert!(
        pages > count / 250,
        "the session was sealed into pages ({pages})"
    );
    assert_eq!(seen.len(), count);
    let session = docs.iter().find(|d| d["doc_type"] == "session").unwrap();
    assert_eq!(session["message_count"], count);
}

async fn sealed_session_reads_whole(store: CosmosStore, client_guard: Guard) {
    let container = store.container().unwrap().clone();
    let store: DynStore = Arc::new(store.with_seal_policy(policy()));
    let app = TestApp::over(store, ApiSettings::default(), client_guard);
    // 2,500 messages of 2 KB: a 5 MB session.
    let id = grow_and_read(&app, "grower", 2500).await;
    check_sealed_storage(&container, "grower", &id, 2500).await;
    // Listing shows the session once, never its pages.
    let listed = app.get_json("/api/chat/sessions?user_id=grower").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(listed["sessions"][0]["message_count"], 2500);
    // The whole history is streamed, not built in memory: no length up front.
    let streamed = app
        .get(&format!("/api/chat/sessions/{id}?user_id=grower"))
        .await
        .expect_status(StatusCode::OK);
    assert!(
        streamed.header("content-length").is_none(),
        "a sealed session is streamed"
    );
    assert!(streamed.header("etag").is_some());
    // Deleting it leaves no page behind.
    app.delete(&format!("/api/chat/sessions/{id}?user_id=grower"))
        .await
        .expect_status(StatusCode::NO_CONTENT);
    assert!(
        partition_docs(&container, "grower").await.is_empty(),
        "pages deleted with the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_a_5_mb_session_is_sealed_and_read_whole() {
    let (store, client) = cosmos::server_cosmos_store().await;
    sealed_session_reads_whole(store, Box::new(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_a_5_mb_session_is_sealed_and_read_whole() {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    sealed_session_reads_whole(store, Box::new(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_serves_the_same_long_session() {
    let (store, dir) = sqlite_store();
    let app = TestApp::over(store, ApiSettings::default(), Box::new(dir));
    grow_and_read(&app, "grower", 2500).await;
}

async fn concurrent_appends_across_a_seal(store: CosmosStore, guard: Guard) {
    let container = store.container().unwrap().clone();
    let store: DynStore = Arc::new(store.with_seal_policy(policy()));
    let server = common::spawn_app(store, guard).await;
    let id = server.create_session("racer").await;
    let path = format!("/api/chat/sessions/{id}/messages?user_id=racer");
    let filler = "y".repeat(2000);
    // Just below the threshold, so the concurrent appends must seal.
    for i in 0..25 {
        server
            .post(
                &path,
                json!({ "id": format!("pre_{i}"), "content": filler, "message_type": "user" }),
            )
            .await;
    }
    // 200 clients at once, each retrying a 503 with the same message id,
    // as a real client does.
    let server = Arc::new(server);
    let posts: Vec<_> = (0..200)
        .map(|i| {
            let (server, path) = (server.clone(), path.clone());
            let body =
                json!({ "id": format!("c_{i:03}"), "content": filler, "message_type": "user" });
            tokio::spawn(async move { server.post_until_stored(&path, &body).await.0 })
        })
        .collect();
    for post in posts {
        let status = post.await.unwrap();
        assert!(status == 201 || status == 200, "{status}");
    }
    let session = server
        .get_json(&format!("/api/chat/sessions/{id}?user_id=racer"))
        .await;
    assert_eq!(session["message_count"], 225);
    let all = ids(&session["messages"]);
    assert_eq!(all.len(), 225);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        225,
        "none duplicated"
    );
    check_sealed_storage(&container, "racer", &id, 225).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_200_concurrent_appends_across_a_seal() {
    let (store, client) = cosmos::server_cosmos_store().await;
    concurrent_appends_across_a_seal(store, Box::new(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_200_concurrent_appends_across_a_seal() {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    concurrent_appends_across_a_seal(store, Box::new(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_larger_than_the_threshold_still_works() {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    let store: DynStore = Arc::new(store.with_seal_policy(policy()));
    let app = TestApp::over(store, ApiSettings::default(), Box::new(client));
    let id = app.create_session("big").await;
    for (i, size) in [1000, 100_000, 1000, 200_000].iter().enumerate() {
        app.post(
            &format!("/api/chat/sessions/{id}/messages?user_id=big"),
            json!({ "id": format!("b{i}"), "content": "z".repeat(*size), "message_type": "user" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    }
    let session = app
        .get_json(&format!("/api/chat/sessions/{id}?user_id=big"))
        .await;
    assert_eq!(ids(&session["messages"]), ["b0", "b1", "b2", "b3"]);
    assert_eq!(
        session["messages"][3]["content"].as_str().unwrap().len(),
        200_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_imported_session_is_sealed_and_reimporting_adds_nothing() {
    use chat_sessions::{
        domain::{ChatMessage, MessageId, MessageType, SessionId, Timestamp, UserId},
        store::{MigrationStore as _, Owner, SessionImport, prelude::*},
    };
    let (store, client) = cosmos::server_cosmos_store().await;
    let container = store.container().unwrap().clone();
    let store = store.with_seal_policy(policy());
    let user = UserId::parse("importer").unwrap();
    let id = SessionId::parse("imported_big").unwrap();
    let message = |i: usize| ChatMessage {
        tool_calls: None,
        tool_call_id: None,
        name: None,
        parent_id: None,
        edited_at: None,
        siblings: None,
        id: MessageId::parse(format!("old_{i:05}")).unwrap(),
        content: format!("{i} {}", "w".repeat(2000)),
        message_type: MessageType::Assistant,
        user_id: Some(user.clone()),
        metadata: Default::default(),
        created_at: Timestamp::parse(&format!("2023-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60))
            .unwrap(),
    };
    let mut messages: Vec<ChatMessage> = (0..1500).map(message).collect();
    messages.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let import = SessionImport {
        id: id.clone(),
        user_id: Some(user.clone()),
        messages: messages.clone(),
    };
    let outcome = store.import_messages(import.clone()).await.unwrap();
    assert!(outcome.created);
    assert_eq!(outcome.added, 1500);
    check_sealed_storage(&container, "importer", "imported_big", 1500).await;
    let whole = store
        .get_session(&Owner::User(user.clone()), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(
        whole.messages,
        crate::conformance::chained(&messages),
        "every message once, in order, each after the one before"
    );
    let again = store.import_messages(import).await.unwrap();
    assert_eq!(
        (again.created, again.added, again.already_present),
        (false, 0, 1500)
    );
    drop(client);
}
