//! Appends on Cosmos DB in steady state are one request: a patch guarded by
//! the version this process last wrote or read. When another process wrote
//! in between, the patch fails (412) and the append reads and patches again,
//! losing nothing; a retry is found in the document or its newest sealed
//! page whatever this process remembers.

use chat_sessions::{
    domain::{JsonObject, MessageId, MessageType, NewMessage, SessionId},
    store::{
        Owner,
        cosmos::{CosmosStore, SealPolicy},
        prelude::*,
    },
};

use crate::common::cosmos;

fn message(id: &str, size: usize) -> NewMessage {
    NewMessage::new(
        Some(MessageId::parse(id).unwrap()),
        format!("{id} {}", "z".repeat(size)),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap()
}

async fn new_session(store: &CosmosStore, user: &str, id: &str) -> (Owner, SessionId) {
    cosmos::owned_session(store, user, id).await
}

/// Requests one append took, and whether it stored its message.
async fn append(store: &CosmosStore, owner: &Owner, id: &SessionId, m: NewMessage) -> (u64, bool) {
    let before = store.metrics();
    let appended = store.append_message(owner, id, m).await.unwrap();
    ((store.metrics() - before).requests, appended.created)
}

/// After a create, every append is one request, except the seals: a seal
/// reads, writes the page and the document in one batch, then appends (3).
async fn steady_state_appends_are_one_request(store: CosmosStore) {
    let policy = SealPolicy {
        max_bytes: 16 * 1024,
        page_bytes: 14 * 1024,
        max_messages: None,
    };
    let store = store.with_seal_policy(policy);
    let (owner, id) = new_session(&store, "steady", "s_steady").await;
    let mut seals = 0;
    for i in 0..60 {
        let (requests, created) =
            append(&store, &owner, &id, message(&format!("m{i:02}"), 1000)).await;
        assert!(created);
        match requests {
            1 => {}
            3 => seals += 1,
            n => panic!("append {i} took {n} requests"),
        }
    }
    let session = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(session.messages.len(), 60);
    // 60 messages of ~1.1 KB in pages of 14 KiB.
    assert!((3..=5).contains(&seals), "{seals} seals");
    // A retry of a message sealed by the last seal is found in the page.
    let newest_page_message = &session.messages[session.messages.len() - 8].id;
    let before = store.metrics();
    let again = store
        .append_message(&owner, &id, message(newest_page_message.as_str(), 1000))
        .await;
    assert!(!again.unwrap().created, "stored once");
    assert!((store.metrics() - before).requests <= 2);
    assert_eq!(
        store
            .get_session(&owner, &id)
            .await
            .unwrap()
            .value
            .message_count,
        60
    );
}

#[tokio::test]
async fn emulator_steady_state_appends_are_one_request() {
    let (store, _client) = cosmos::emulator_cosmos_store().await;
    steady_state_appends_are_one_request(store).await;
}

#[tokio::test]
async fn server_steady_state_appends_are_one_request() {
    steady_state_appends_are_one_request(cosmos::server_cosmos_store().await.0).await;
}

/// Two processes (two stores, each with its own memory) on one container.
#[tokio::test]
async fn another_process_writing_costs_a_read_and_loses_nothing() {
    let (client, config) = cosmos::server_client().await;
    let open = || CosmosStore::open(&client, &config.database, &config.sessions_container);
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    let (owner, id) = new_session(&a, "two", "s_two").await;
    assert_eq!(append(&a, &owner, &id, message("a1", 10)).await, (1, true));
    // B knows nothing of the session: read, then patch.
    assert_eq!(append(&b, &owner, &id, message("b1", 10)).await, (2, true));
    // A's version is out of date: its patch fails, it reads and patches.
    assert_eq!(append(&a, &owner, &id, message("a2", 10)).await, (3, true));
    assert_eq!(append(&a, &owner, &id, message("a3", 10)).await, (1, true));
    // A retry through the other process finds the message: nothing added.
    let (_, created) = append(&b, &owner, &id, message("a3", 10)).await;
    assert!(!created);
    // The same id with other content is a conflict, whoever remembers what.
    let other = NewMessage::new(
        Some(MessageId::parse("a3").unwrap()),
        "something else".into(),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap();
    assert!(a.append_message(&owner, &id, other).await.is_err());
    // A read tells B the version: its next append is one request.
    b.get_session(&owner, &id).await.unwrap();
    assert_eq!(append(&b, &owner, &id, message("b2", 10)).await, (1, true));
    let session = a.get_session(&owner, &id).await.unwrap().value;
    let ids: Vec<&str> = session.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["a1", "b1", "a2", "a3", "b2"]);
    assert_eq!(session.message_count, 5);
    // Deleted and made again by the other process: nothing stale survives.
    b.delete_session(&owner, &id, None).await.unwrap();
    new_session(&b, "two", "s_two").await;
    assert!(append(&a, &owner, &id, message("a1", 10)).await.1);
    let session = b.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(session.messages.len(), 1);
}

/// The default seal policy's promises, in requests (the RU behind the choice
/// are the `cosmos_requests` bench's): a session of 50 typical messages (about
/// 600 bytes each) is one point read, and its newest 50 messages never take
/// more than two, however long it grows.
#[tokio::test]
async fn the_default_policy_reads_50_messages_in_one_request_and_the_newest_50_in_two() {
    let (store, _client) = cosmos::emulator_cosmos_store().await;
    let (owner, id) = new_session(&store, "policy", "s_policy").await;
    for i in 0..160 {
        // ~430 characters of content: a stored message of about 600 bytes.
        append(&store, &owner, &id, message(&format!("m{i:03}"), 420)).await;
        let n = i + 1;
        let before = store.metrics();
        let tail = store.get_session_tail(&owner, &id, 50).await.unwrap();
        let tail_requests = (store.metrics() - before).requests;
        assert_eq!(tail.value.messages.len(), n.min(50));
        assert!(
            tail_requests <= 2,
            "newest 50 of {n}: {tail_requests} reads"
        );
        if n == 50 {
            let before = store.metrics();
            let whole = store.get_session(&owner, &id).await.unwrap();
            assert_eq!(whole.value.messages.len(), 50);
            assert_eq!(
                (store.metrics() - before).requests,
                1,
                "50 messages, one read"
            );
        }
    }
    let session = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(session.messages.len(), 160);
    assert!(
        session.messages.windows(2).all(|w| w[0].id < w[1].id),
        "in order"
    );
}
