//! Cosmos DB under faults: the local server (`tests/cosmos-server`) throttles
//! (429 with `x-ms-retry-after-ms`), answers 503, resets connections before
//! handling a request, loses answers after applying a write, and delays, at
//! seeded per-request probabilities. Nothing a client was told is stored is
//! lost or doubled; a client that retries each failure with the same message
//! id ends with every message stored exactly once; the only 5xx is 503 with
//! `Retry-After`; the migration ends with exactly the legacy set.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use chat_sessions::{
    domain::{
        JsonObject, MessageId, MessageType, NewMessage, NewSession, SessionId, Timestamp, UserId,
    },
    migration::{self, Options, Quiet, Resume, cosmos_source::CosmosLegacySource},
    store::{DynMigrationStore, DynStore, Owner, cosmos::CosmosStore, prelude::*},
};
use serde_json::{Value, json};

use crate::{
    common::{cosmos, spawn_app},
    legacy_data::{generate, verify},
    migration_cosmos::{legacy_ids, seed},
};

/// Every kind of fault, often enough that a few dozen requests meet each
/// (seed 62 draws each at least three times in its first 50 requests).
fn plan() -> Value {
    json!({
        "seed": 62,
        "throttle": 0.06, "retry_after_ms": 10,
        "unavailable": 0.05,
        "reset": 0.05,
        "lost_response": 0.06,
        "delay": 0.1, "delay_ms": 20,
    })
}

/// Every kind of fault was injected at least once.
fn assert_all_faults_met(report: &Value) {
    for kind in ["throttle", "unavailable", "reset", "lost_response", "delay"] {
        assert!(
            report["injected"][kind].as_u64().unwrap() > 0,
            "no {kind} injected: {report}"
        );
    }
}

async fn store_on(client: &azure_data_cosmos::CosmosClient, database: &str) -> CosmosStore {
    CosmosStore::open(client, database, "chat_sessions")
        .await
        .unwrap()
}

fn new_message(id: &str) -> NewMessage {
    NewMessage::new(
        Some(MessageId::parse(id).unwrap()),
        format!("content of {id}"),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap()
}

/// Every write's answer lost: each append still stores its message once and
/// answers with it (as to a retry: the read after the failure finds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_neither_lose_nor_double_a_message() {
    let (client, config) = cosmos::server_client().await;
    let store = store_on(&client, &config.database).await;
    let user = UserId::parse("lost").unwrap();
    let owner = Owner::User(user.clone());
    let id = SessionId::parse("s_lost").unwrap();
    let new = NewSession::new(
        Some(id.clone()),
        Some(user.clone()),
        None,
        JsonObject::new(),
        Timestamp::now(),
    )
    .unwrap();
    store.create_session(new).await.unwrap();
    cosmos::set_faults(&config.database, json!({ "seed": 1, "lost_response": 1.0 })).await;
    for i in 0..3 {
        let appended = store
            .append_message(&owner, &id, new_message(&format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(appended.message.id.as_str(), format!("m{i}"));
    }
    // A retry of one of them: the same message, stored once.
    let again = store
        .append_message(&owner, &id, new_message("m1"))
        .await
        .unwrap();
    assert!(!again.created);
    let report = cosmos::clear_faults(&config.database).await;
    assert!(report["injected"]["lost_response"].as_u64().unwrap() >= 3);
    let session = store.get_session(&owner, &id).await.unwrap().value;
    let ids: Vec<&str> = session.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m0", "m1", "m2"]);
    assert_eq!(session.message_count, 3);

    // A create whose answer is lost (the SDK's retry then finds it: 409)
    // succeeds; so does a delete whose answer is lost (the retry: 404).
    // Seeds 18 and 1 lose exactly the first attempt's answer.
    cosmos::set_faults(
        &config.database,
        json!({ "seed": 18, "lost_response": 0.5 }),
    )
    .await;
    let other = SessionId::parse("s_created").unwrap();
    let new = NewSession::new(
        Some(other.clone()),
        Some(user.clone()),
        Some("made under faults".into()),
        JsonObject::new(),
        Timestamp::now(),
    )
    .unwrap();
    let created = store.create_session(new).await.unwrap();
    let report = cosmos::clear_faults(&config.database).await;
    assert_eq!(report["injected"]["lost_response"], 1, "{report}");
    assert_eq!(
        store.get_session(&owner, &other).await.unwrap().etag,
        created.etag
    );
    cosmos::set_faults(&config.database, json!({ "seed": 1, "lost_response": 0.5 })).await;
    store.delete_session(&owner, &other, None).await.unwrap();
    let report = cosmos::clear_faults(&config.database).await;
    assert_eq!(report["injected"]["lost_response"], 1, "{report}");
    assert!(store.get_session(&owner, &other).await.is_err());
}

/// Two instances of the service (two processes: each its own store, cache
/// and turns) over one container, two clients each, appending to one session
/// at once through the HTTP API with every fault on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_under_faults_store_every_message_once() {
    const WRITERS: usize = 4;
    const MESSAGES: usize = 12;
    let (client, config) = cosmos::server_client().await;
    let mut apps = Vec::new();
    for _ in 0..2 {
        let store: DynStore = Arc::new(store_on(&client, &config.database).await);
        apps.push(Arc::new(spawn_app(store, Box::new(())).await));
    }
    let id = apps[0].create_session("faulty").await;
    let path = format!("/api/chat/sessions/{id}/messages?user_id=faulty");
    cosmos::set_faults(&config.database, plan()).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (app, path) = (apps[w % apps.len()].clone(), path.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0..MESSAGES {
                    let mid = format!("w{w}_{i:02}");
                    let body = json!({ "id": mid, "content": format!("{mid} says hi"), "message_type": "user" });
                    // Retries 503 and broken connections with the same id;
                    // fails the test on any other error status.
                    let (_, stored) = app.post_until_stored(&path, &body).await;
                    assert_eq!(stored["id"], mid.as_str());
                    assert_eq!(stored["content"], body["content"]);
                    acknowledged.push(mid);
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let report = cosmos::clear_faults(&config.database).await;
    assert_all_faults_met(&report);
    let session = apps[1]
        .get_json(&format!("/api/chat/sessions/{id}?user_id=faulty"))
        .await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in session["messages"].as_array().unwrap() {
        *counts
            .entry(m["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(acknowledged.len(), WRITERS * MESSAGES);
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        acknowledged,
        "every acknowledged message is stored, and nothing else"
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "each exactly once: {counts:?}"
    );
    assert_eq!(session["message_count"], WRITERS * MESSAGES);
    // Each writer's messages in the order it sent them.
    for w in 0..WRITERS {
        let own: Vec<&str> = session["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .filter(|m| m.starts_with(&format!("w{w}_")))
            .collect();
        assert!(own.windows(2).all(|p| p[0] < p[1]), "{own:?}");
    }
}

/// The migration from the legacy container, deleting what it moved, with
/// every fault on: run (and resumed, as the queue or an operator does) until
/// a pass finishes clean; then exactly the legacy set is in the sessions and
/// only orphans and the conflict remain behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_under_faults_moves_every_message_exactly_once() {
    let set = generate(40, 3, 8, false);
    let (client, config) = cosmos::server_client().await;
    let database = client.database_client(&config.database);
    let legacy = database
        .container_client(&config.legacy_container, None)
        .await
        .unwrap();
    seed(&legacy, &set).await;
    let store: DynMigrationStore = Arc::new(store_on(&client, &config.database).await);
    cosmos::set_faults(&config.database, plan()).await;
    let options = Options {
        batch_size: 50,
        dry_run: false,
        delete_old: true,
        run_id: "faulty".into(),
        budget: None,
        continues_step: None,
    };
    let mut clean = false;
    for _ in 0..40 {
        let mut source = CosmosLegacySource::new(legacy.clone(), "/session_id", 50);
        match migration::run(
            &mut source,
            store.as_ref(),
            &options,
            Resume::Store,
            &mut Quiet,
        )
        .await
        {
            Ok(state) if state.report.finished && state.report.errors.is_empty() => {
                clean = true;
                break;
            }
            // Unfinished, failed or with failed sessions: go on (a finished
            // pass run again is a new pass that picks up what is missing).
            Ok(_) | Err(_) => {}
        }
    }
    let report = cosmos::clear_faults(&config.database).await;
    assert!(clean, "no clean pass in 40 runs");
    assert_all_faults_met(&report);
    verify(&store, &set).await;
    let expected_left: BTreeSet<String> = set
        .records
        .iter()
        .filter(|r| {
            !r["session_id"].is_string() || r["session_id"] == set.conflict_session.as_str()
        })
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(legacy_ids(&legacy).await, expected_left);
}
