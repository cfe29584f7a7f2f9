//! Export, erase and retention where Cosmos DB differs (issue 10): sealed
//! pages streamed out and erased, leftover pages, the legacy container
//! erased with the user (on the local Cosmos-compatible server), and old
//! documents without `archived_at`.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use azure_data_cosmos::{ContainerClient, FeedScope, PartitionKey, Query};
use chat_sessions::{
    api::{ApiSettings, AppState},
    domain::{ChatMessage, MessageId, MessageType, SessionId, Timestamp, UserId},
    migration::SourceSpec,
    store::{
        DynStore, ExportItem, MigrationStore as _, Owner, RetentionStore as _, SessionImport,
        cosmos::{CosmosStore, SealPolicy},
        export::export,
        prelude::*,
    },
};
use futures::TryStreamExt as _;
use serde_json::{Value, json};

use crate::common::{
    TestApp,
    cosmos::{self, partition_docs},
};

/// A small threshold: sessions of a few hundred KB get sealed pages.
fn small_pages(store: CosmosStore) -> CosmosStore {
    store.with_seal_policy(SealPolicy {
        max_bytes: 32 * 1024,
        page_bytes: SealPolicy::page_bytes_for(32 * 1024),
        max_messages: None,
    })
}

fn old_message(i: usize, owner: &UserId) -> ChatMessage {
    ChatMessage {
        tool_calls: None,
        tool_call_id: None,
        name: None,
        parent_id: None,
        edited_at: None,
        siblings: None,
        id: MessageId::parse(format!("old_{i:05}")).unwrap(),
        content: format!("{i} {}", "v".repeat(1000)),
        message_type: MessageType::User,
        user_id: Some(owner.clone()),
        metadata: Default::default(),
        created_at: Timestamp::parse(&format!(
            "2023-01-01T{:02}:{:02}:{:02}Z",
            i / 3600,
            i / 60 % 60,
            i % 60
        ))
        .unwrap(),
    }
}

/// A sealed session of `count` ~1 KB messages for `owner`, imported.
async fn sealed_session(store: &CosmosStore, owner: &UserId, id: &str, count: usize) -> SessionId {
    let id = SessionId::parse(id).unwrap();
    store
        .import_messages(SessionImport {
            id: id.clone(),
            user_id: Some(owner.clone()),
            messages: (0..count).map(|i| old_message(i, owner)).collect(),
        })
        .await
        .unwrap();
    id
}

async fn sealed_sessions_stream_out_page_by_page_and_erase_whole(
    store: CosmosStore,
    guard: crate::common::Guard,
) {
    let container = store.container().unwrap().clone();
    let store = small_pages(store);
    let alice = UserId::parse("alice").unwrap();
    let long = sealed_session(&store, &alice, "long_one", 600).await;
    let docs = partition_docs(&container, "alice").await;
    let pages = docs
        .iter()
        .filter(|d| d["doc_type"] == "session_page")
        .count();
    assert!(pages >= 5, "sealed into pages ({pages})");
    let store: DynStore = Arc::new(store);
    let owner = Owner::User(alice.clone());

    // The export reads the pages one at a time: several message chunks.
    let items: Vec<ExportItem> = export(store.clone(), owner.clone())
        .try_collect()
        .await
        .unwrap();
    let chunks: Vec<&Vec<ChatMessage>> = items
        .iter()
        .filter_map(|i| match i {
            ExportItem::Messages(_, m) => Some(m),
            ExportItem::Session { .. } => None,
        })
        .collect();
    assert!(chunks.len() > pages, "one chunk per page and the document");
    let exported: Vec<ChatMessage> = chunks.into_iter().flatten().cloned().collect();
    let whole = store.get_session(&owner, &long).await.unwrap().value;
    assert_eq!(exported, whole.messages);
    assert_eq!(exported.len(), 600);

    // Over HTTP, the session download streams too.
    let app = TestApp::over(store.clone(), ApiSettings::default(), guard);
    let r = app
        .get("/api/chat/sessions/long_one/export?user_id=alice&format=ndjson")
        .await
        .expect_status(StatusCode::OK);
    assert!(r.header("content-length").is_none(), "streamed");
    let lines: Vec<Value> = std::str::from_utf8(&r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 601);
    assert_eq!(lines[600]["id"], "old_00599");

    // A page left behind by an interrupted delete goes too.
    container
        .upsert_item(
            PartitionKey::from("alice".to_owned()),
            "gone_before~000000",
            &json!({
                "id": "gone_before~000000", "user_id": "alice", "doc_type": "session_page",
                "session_id": "gone_before", "page": 0, "messages": []
            }),
            None,
        )
        .await
        .unwrap();
    let r = app
        .post(
            "/api/chat/erase?user_id=alice",
            json!({ "confirm": "alice" }),
        )
        .await
        .expect_status(StatusCode::OK)
        .json();
    assert_eq!(r["sessions_deleted"], 1);
    assert_eq!(r["messages_deleted"], 600);
    assert_eq!(r["complete"], true);
    assert!(
        partition_docs(&container, "alice").await.is_empty(),
        "no session, page or leftover of alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_sealed_sessions_stream_out_page_by_page_and_erase_whole() {
    let (store, client) = cosmos::server_cosmos_store().await;
    sealed_sessions_stream_out_page_by_page_and_erase_whole(store, Box::new(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_sealed_sessions_stream_out_page_by_page_and_erase_whole() {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    sealed_sessions_stream_out_page_by_page_and_erase_whole(store, Box::new(client)).await;
}

/// Old per-message documents in the legacy container (partitioned by
/// `/session_id`): `per_user` for each user, some without a session.
async fn seed_legacy(legacy: &ContainerClient, users: &[&str], per_user: usize) {
    for user in users {
        for i in 0..per_user {
            let session = (i % 7 != 0).then(|| format!("legacy_{user}_{}", i % 5));
            let doc = json!({
                "id": format!("{user}_{i}"), "session_id": session, "user_id": user,
                "content": format!("old {i}"), "message_type": "user", "metadata": {},
                "created_at": "2023-05-01T10:00:00Z"
            });
            let pk = match &session {
                Some(s) => PartitionKey::from(s.clone()),
                None => PartitionKey::from(PartitionKey::NULL),
            };
            legacy
                .create_item(pk, &format!("{user}_{i}"), &doc, None)
                .await
                .unwrap();
        }
    }
}

async fn legacy_users(legacy: &ContainerClient) -> Vec<String> {
    let docs: Vec<Value> = legacy
        .query_items::<Value>(
            Query::from("SELECT c.user_id FROM c"),
            FeedScope::full_container(),
            None,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.iter()
        .map(|d| d["user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erase_takes_the_users_legacy_documents_too_and_resumes() {
    let (client, config) = cosmos::server_client().await;
    let legacy = client
        .database_client(&config.database)
        .container_client(&config.legacy_container, None)
        .await
        .unwrap();
    seed_legacy(&legacy, &["alice", "bob"], 150).await;
    let store = CosmosStore::open(&client, &config.database, &config.sessions_container)
        .await
        .unwrap();
    let store: DynStore = Arc::new(store);
    let eraser = SourceSpec::Cosmos {
        container: legacy.clone(),
        partition_key_path: "/session_id".into(),
    }
    .eraser()
    .expect("the legacy container can be erased from");
    assert!(
        SourceSpec::Jsonl("old.jsonl".into()).eraser().is_none(),
        "a JSONL file is never changed"
    );
    let settings = ApiSettings {
        erase_budget: Duration::ZERO,
        ..ApiSettings::default()
    };
    let app = TestApp::over_state(
        AppState::new(store.clone(), settings).with_legacy_eraser(eraser),
        Box::new(client),
    );
    for owner in ["alice", "bob"] {
        for _ in 0..3 {
            let id = app.create_session(owner).await;
            app.post(
                &format!("/api/chat/sessions/{id}/messages?user_id={owner}"),
                json!({ "content": "new", "message_type": "user" }),
            )
            .await
            .expect_status(StatusCode::CREATED);
        }
    }
    let bob_before = app.get("/api/chat/export?user_id=bob").await.body;
    assert!(!bob_before.is_empty());
    let (mut legacy_deleted, mut sessions, mut messages, mut requests) = (0, 0, 0, 0);
    loop {
        let r = app
            .post(
                "/api/chat/erase?user_id=alice",
                json!({ "confirm": "alice" }),
            )
            .await
            .expect_status(StatusCode::OK)
            .json();
        requests += 1;
        legacy_deleted += r["legacy_messages_deleted"].as_u64().unwrap();
        sessions += r["sessions_deleted"].as_u64().unwrap();
        messages += r["messages_deleted"].as_u64().unwrap();
        if r["complete"] == true {
            break;
        }
        assert!(requests < 20);
    }
    assert!(
        requests > 1,
        "150 legacy documents with no time left take two requests"
    );
    assert_eq!((legacy_deleted, sessions, messages), (150, 3, 3));
    let left: BTreeSet<String> = legacy_users(&legacy).await.into_iter().collect();
    assert_eq!(
        left,
        BTreeSet::from(["bob".to_owned()]),
        "only bob's remain"
    );
    assert_eq!(legacy_users(&legacy).await.len(), 150);
    assert_eq!(
        app.get("/api/chat/export?user_id=bob").await.body,
        bob_before
    );
    let alice = app
        .get("/api/chat/export?user_id=alice")
        .await
        .expect_status(StatusCode::OK);
    assert!(alice.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_without_archived_at_reads_as_null_and_is_due_by_updated_at() {
    let (store, client) = cosmos::server_cosmos_store().await;
    let container = store.container().unwrap().clone();
    let (owner, id) = cosmos::owned_session(&store, "alice", "archived_long_ago").await;
    // As written before archived_at existed: archived, and no such member.
    let mut doc: Value = container
        .read_item(
            PartitionKey::from("alice".to_owned()),
            "archived_long_ago",
            None,
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let object = doc.as_object_mut().unwrap();
    object.remove("archived_at");
    object.insert("is_active".into(), json!(false));
    object.insert("updated_at".into(), json!("2020-01-01T00:00:00.000000Z"));
    container
        .replace_item(
            PartitionKey::from("alice".to_owned()),
            "archived_long_ago",
            &doc,
            None,
        )
        .await
        .unwrap();
    let read = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(read.archived_at, None);
    assert!(!read.is_active);
    let due: Vec<_> = store
        .archived_before(Timestamp::parse("2021-01-01T00:00:00Z").unwrap())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].since,
        Timestamp::parse("2020-01-01T00:00:00Z").unwrap()
    );
    let not_yet: Vec<_> = store
        .archived_before(Timestamp::parse("2019-01-01T00:00:00Z").unwrap())
        .try_collect()
        .await
        .unwrap();
    assert!(not_yet.is_empty());
    // The sweep deletes it.
    let report = chat_sessions::retention::run(
        &store,
        chat_sessions::retention::RetentionPolicy {
            archive_after_days: None,
            delete_after_days: Some(365),
        },
        Timestamp::now(),
        false,
        Instant::now() + Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(report.deleted, 1);
    assert!(partition_docs(&container, "alice").await.is_empty());
    drop(client);
}
