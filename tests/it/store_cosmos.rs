//! The conformance suite on Cosmos DB: against the local Cosmos-compatible
//! server (started by the test itself), against the SDK's in-memory
//! emulator, and made unconnected then connected in the background as `serve` does.

use crate::common::{
    cosmos,
    json::{MESSAGE_MEMBERS, SESSION_MEMBERS, sorted_keys},
};

mod server {
    use crate::conformance;
    crate::conformance_suite!(crate::common::cosmos::server_store());
}

mod emulator {
    use crate::conformance;
    crate::conformance_suite!(crate::common::cosmos::emulator_store());
}

/// The store as `serve` runs it on Cosmos DB: made unconnected, then
/// connected in the background (on the emulator).
mod connecting {
    use crate::conformance;
    crate::conformance_suite!(crate::common::cosmos::connecting_emulator_store());
}

mod server_search {
    crate::search_suite!(async {
        let (store, client) = crate::common::cosmos::server_cosmos_store().await;
        (std::sync::Arc::new(store), client)
    });
}

// Search is not run on the SDK's in-memory emulator: its query engine
// answers "unsupported expression: subqueries" (`ARRAY(SELECT …)`,
// `EXISTS(SELECT …)`), which real Cosmos DB and the local server support.

/// The stored document is the seed's "New ChatSession Document": same names
/// and nesting, plus only the discriminator and Cosmos' system properties;
/// no SDK bookkeeping such as `_azsdkPatchTracking`.
async fn stored_document_has_the_seed_shape(store: chat_sessions::store::cosmos::CosmosStore) {
    use chat_sessions::{
        domain::{JsonObject, MessageType, NewMessage, NewSession, SessionId, Timestamp, UserId},
        store::{Owner, prelude::*},
    };
    let user = UserId::parse("user_123").unwrap();
    let id = SessionId::parse("session_12345_20240101_120000").unwrap();
    let new = NewSession::new(
        Some(id.clone()),
        Some(user.clone()),
        Some("Shopping Chat".into()),
        JsonObject::new(),
        Timestamp::now(),
    )
    .unwrap();
    store.create_session(new).await.unwrap();
    for (content, kind) in [
        ("Hello!", MessageType::User),
        ("Hi! How can I help you?", MessageType::Assistant),
    ] {
        let m = NewMessage::new(None, content.into(), kind, None, JsonObject::new()).unwrap();
        store
            .append_message(&Owner::User(user.clone()), &id, m)
            .await
            .unwrap();
    }
    let doc: serde_json::Value = store
        .container()
        .unwrap()
        .read_item(user.as_str().to_owned(), id.as_str(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let mut keys = sorted_keys(&doc);
    keys.retain(|k| !k.starts_with('_') || k.starts_with("_azsdk"));
    // The seed's members, the discriminator, and the count of every branch's
    // messages; a message also names its parent.
    let mut expected = SESSION_MEMBERS.to_vec();
    expected.extend(["doc_type", "total_message_count"]);
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(keys, expected);
    assert_eq!(doc["doc_type"], "session");
    assert_eq!(doc["user_id"], "user_123");
    assert_eq!(doc["message_count"], 2);
    let messages = doc["messages"].as_array().unwrap();
    let mut members = MESSAGE_MEMBERS.to_vec();
    members.push("parent_id");
    members.sort_unstable();
    members.dedup();
    assert_eq!(sorted_keys(&messages[0]), members);
    // Stored without a parent where it is implied (the message before it
    // in the same document), read back with it.
    assert_eq!(messages[0]["parent_id"], serde_json::Value::Null);
    assert_eq!(messages[1]["parent_id"], serde_json::Value::Null);
    let read = store
        .get_session(&Owner::User(user.clone()), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(
        read.messages[1].parent_id.as_ref(),
        Some(&read.messages[0].id)
    );
    assert_eq!(messages[1]["message_type"], "assistant");
    assert_eq!(messages[1]["user_id"], "user_123");
    for t in [
        &doc["created_at"],
        &doc["updated_at"],
        &doc["last_message_at"],
        &messages[0]["created_at"],
    ] {
        let text = t.as_str().expect("timestamps are strings");
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.ends_with('Z'),
            "{text}"
        );
    }
}

#[tokio::test]
async fn server_stored_document_has_the_seed_shape() {
    stored_document_has_the_seed_shape(cosmos::server_cosmos_store().await.0).await;
}

#[tokio::test]
async fn emulator_stored_document_has_the_seed_shape() {
    let (store, _client) = cosmos::emulator_cosmos_store().await;
    stored_document_has_the_seed_shape(store).await;
}

/// Reads are one request each; so is an append when nobody else writes (a
/// patch guarded by the version the create returned); a listing page is one
/// query.
#[tokio::test]
async fn request_budget_per_operation() {
    use chat_sessions::{
        domain::{JsonObject, MessageType, NewMessage},
        store::{ListQuery, prelude::*},
    };
    let (store, _client) = cosmos::emulator_cosmos_store().await;
    let before = store.metrics();
    let (owner, id) = cosmos::owned_session(&store, "budget", "s_budget").await;
    assert_eq!((store.metrics() - before).requests, 1, "create");
    let before = store.metrics();
    let m = NewMessage::new(
        None,
        "hi".into(),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap();
    store.append_message(&owner, &id, m).await.unwrap();
    assert_eq!(
        (store.metrics() - before).requests,
        1,
        "append to a version this process knows"
    );
    let before = store.metrics();
    let read = store.get_session(&owner, &id).await.unwrap();
    assert_eq!((store.metrics() - before).requests, 1, "get");
    let before = store.metrics();
    assert_eq!(
        store
            .get_session_if_changed(&owner, &id, Some(&read.etag))
            .await
            .unwrap(),
        None
    );
    assert_eq!((store.metrics() - before).requests, 1, "revalidate");
    let before = store.metrics();
    let page = store
        .list_sessions(
            &owner,
            &ListQuery {
                limit: 50,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.sessions.len(), 1);
    assert_eq!((store.metrics() - before).requests, 1, "list page");
}
