//! Conversations as trees on Cosmos DB, where it differs from the embedded
//! store (the behaviour itself is the conformance suite's,
//! `conformance/tree.rs`): what reads, forks and switches cost in requests
//! (counted by the store and at the local server), where alternatives live
//! (never in the session document), a change too large for one
//! transactional batch refused, sessions written before trees, and several
//! processes forking, switching and appending on one session under faults.

use std::collections::{HashMap, HashSet};

use chat_sessions::{
    domain::{
        ChatMessage, JsonObject, MessageId, MessageType, NewMessage, Parent, SessionId, Timestamp,
        UserId,
    },
    store::{
        ContextSink, MessageQuery, Owner, StoreError, TreeQuery,
        cosmos::{BRANCH_DOC_TYPE, CosmosStore, SealPolicy},
        prelude::*,
    },
};
use serde_json::{Value, json};

use crate::{
    common::cosmos,
    conformance::{self, ids, mid, until_through},
};

/// Message `id` under `parent`, about `size` bytes of content.
fn say(id: &str, parent: Parent, size: usize) -> NewMessage {
    let mut m = NewMessage::new(
        Some(mid(id)),
        format!("{id} {}", "y".repeat(size)),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap();
    m.parent = parent;
    m
}

/// A store on a fresh database of the local server, with `policy`.
async fn server_store(policy: SealPolicy) -> (CosmosStore, String) {
    let (client, config) = cosmos::server_client().await;
    let store = CosmosStore::open(&client, &config.database, &config.sessions_container)
        .await
        .unwrap()
        .with_seal_policy(policy);
    (store, config.database)
}

/// Runs `op`; returns its result and the requests it took, as the store
/// counted them, checked against the requests the server answered.
async fn counted<T>(
    store: &CosmosStore,
    database: &str,
    op: impl std::future::Future<Output = T>,
) -> (T, u64) {
    let (_, mark) = cosmos::answered(database, u64::MAX).await;
    let before = store.metrics();
    let out = op.await;
    let requests = (store.metrics() - before).requests;
    let (at_server, _) = cosmos::answered(database, mark).await;
    assert_eq!(
        at_server, requests,
        "the server answered what the store sent"
    );
    (out, requests)
}

/// Every document of `user`'s partition by kind, raw.
async fn documents(store: &CosmosStore, user: &str) -> HashMap<String, Vec<Value>> {
    let mut by_kind: HashMap<String, Vec<Value>> = HashMap::new();
    for doc in cosmos::partition_docs(store.container().unwrap(), user).await {
        let kind = doc["doc_type"].as_str().unwrap_or_default().to_owned();
        by_kind.entry(kind).or_default().push(doc);
    }
    by_kind
}

/// The ids of every message stored in `user`'s partition, each document's
/// in turn: a message in two places shows up twice.
async fn stored_message_ids(store: &CosmosStore, user: &str) -> Vec<String> {
    let mut out = Vec::new();
    for doc in cosmos::partition_docs(store.container().unwrap(), user).await {
        for m in doc["messages"].as_array().into_iter().flatten() {
            out.push(m["id"].as_str().unwrap().to_owned());
        }
    }
    out
}

/// A regenerated answer is a read and one batch; the session stays one
/// point read however many alternatives it has, and an append after a fork
/// is one patch again; the alternatives are not in the session document.
#[tokio::test]
async fn forks_at_the_end_keep_reads_and_appends_at_their_cost() {
    let (store, db) = server_store(SealPolicy::default()).await;
    let (owner, id) = cosmos::owned_session(&store, "tree_costs", "s_costs").await;
    // 45 typical messages (about 600 bytes each): one document.
    for i in 0..45 {
        let m = say(&format!("m{i:02}"), Parent::Latest, 520);
        store.append_message(&owner, &id, m).await.unwrap();
    }
    // The last answer regenerated 30 times: a read and one batch each, and
    // once the query of alternatives too, when the filter of their ids has
    // filled up and is built afresh (at twice the size).
    let mut rebuilds = 0;
    for r in 0..30 {
        let again = say(&format!("r{r:02}"), Parent::Message(mid("m43")), 520);
        let (appended, requests) =
            counted(&store, &db, store.append_message(&owner, &id, again)).await;
        assert!(appended.unwrap().created);
        match requests {
            2 => {}
            3 => rebuilds += 1,
            n => panic!("regeneration {r}: {n} requests"),
        }
    }
    assert_eq!(rebuilds, 1);
    let next = say("next", Parent::Latest, 520);
    let (appended, requests) = counted(&store, &db, store.append_message(&owner, &id, next)).await;
    assert_eq!(appended.unwrap().message.parent_id, Some(mid("r29")));
    assert_eq!(requests, 1, "an append after a fork: one patch");
    let (read, requests) = counted(&store, &db, store.get_session(&owner, &id)).await;
    assert_eq!(
        requests, 1,
        "a forked session of 46 messages: one point read"
    );
    let session = read.unwrap().value;
    assert_eq!(session.messages.len(), 46);
    assert_eq!(
        (session.message_count, session.total_message_count),
        (46, 76)
    );
    let siblings = session.messages[44].siblings.as_ref().unwrap();
    assert_eq!(siblings.len(), 31);
    assert_eq!(siblings[0], mid("m44"));
    assert_eq!(siblings[30], mid("r29"));
    // The session document holds the current branch only.
    let docs = documents(&store, "tree_costs").await;
    let doc = &docs["session"][0];
    assert!(doc.get("sealed_page_sizes").is_none(), "still one document");
    assert_eq!(doc["messages"].as_array().unwrap().len(), 46);
    let off: HashSet<String> = docs[BRANCH_DOC_TYPE]
        .iter()
        .flat_map(|d| d["messages"].as_array().unwrap().iter())
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(off.len(), 30);
    assert!(off.contains("m44") && off.contains("r00") && !off.contains("r29"));
    // Back to the first answer: a read, the query of alternatives, a batch.
    let (switched, requests) = counted(
        &store,
        &db,
        store.switch_branch(&owner, &id, &mid("m44"), None),
    )
    .await;
    assert_eq!(requests, 3);
    let switched = switched.unwrap();
    assert_eq!(switched.value.messages.last().unwrap().id, mid("m44"));
    let (read, requests) = counted(&store, &db, store.get_session(&owner, &id)).await;
    assert_eq!(requests, 1);
    assert_eq!(read.unwrap().value, switched.value);
    let next = say("after_switch", Parent::Latest, 520);
    let (_, requests) = counted(&store, &db, store.append_message(&owner, &id, next)).await;
    assert_eq!(requests, 1, "an append after a switch: one patch");
}

/// In a long session (sealed pages), forking near the end reads only the
/// newest page besides the document, like an append that does not know the
/// version; appends after it are one patch; a fork in the middle reads and
/// rewrites the pages from there on, and every message stays.
#[tokio::test]
async fn a_fork_near_the_end_of_a_long_session_costs_what_it_costs_in_a_short_one() {
    let policy = SealPolicy {
        max_bytes: 16 * 1024,
        page_bytes: 14 * 1024,
        max_messages: None,
    };
    let (store, db) = server_store(policy).await;
    let (owner, id) = cosmos::owned_session(&store, "tree_long", "s_long").await;
    for i in 0..200 {
        let m = say(&format!("m{i:03}"), Parent::Latest, 400);
        store.append_message(&owner, &id, m).await.unwrap();
    }
    let docs = documents(&store, "tree_long").await;
    let pages = docs["session_page"].len();
    assert!(pages >= 5, "{pages} pages");
    let again = say("r0", Parent::Message(mid("m198")), 400);
    let (appended, requests) = counted(&store, &db, store.append_message(&owner, &id, again)).await;
    assert!(appended.unwrap().created);
    assert!(
        requests <= 3,
        "the document, its newest page, one batch: {requests}"
    );
    let next = say("after_r0", Parent::Latest, 400);
    let (_, requests) = counted(&store, &db, store.append_message(&owner, &id, next)).await;
    assert_eq!(requests, 1);
    let middle = say("r1", Parent::Message(mid("m100")), 400);
    let (appended, requests) =
        counted(&store, &db, store.append_message(&owner, &id, middle)).await;
    assert!(appended.unwrap().created);
    assert!(
        requests <= 2 + pages as u64,
        "the pages from m100's on, no more: {requests}"
    );
    let session = store.get_session(&owner, &id).await.unwrap().value;
    let expected: Vec<String> = (0..=100)
        .map(|i| format!("m{i:03}"))
        .chain(["r1".to_owned()])
        .collect();
    assert_eq!(ids(&session.messages), expected);
    assert_eq!(session.total_message_count, 203);
    let mut all = stored_message_ids(&store, "tree_long").await;
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (203, 203), "every message once");
    // Back to the long branch: its pages laid out again.
    let back = store
        .switch_branch(&owner, &id, &mid("after_r0"), None)
        .await
        .unwrap()
        .value;
    assert_eq!(back.messages.len(), 201);
    assert_eq!(back.messages[199].id, mid("r0"));
    let tail = store.get_session_tail(&owner, &id, 50).await.unwrap().value;
    assert_eq!(tail.messages[..], back.messages[151..]);
}

/// A change that would rewrite more documents than one transactional batch
/// holds is refused, naming the field, and nothing changes; the same
/// change near the end goes through.
#[tokio::test]
async fn a_change_too_large_for_one_batch_is_refused_and_changes_nothing() {
    // Pages of one message each: a fork at the start would delete them all.
    let policy = SealPolicy {
        max_bytes: SealPolicy::MIN_BYTES,
        page_bytes: SealPolicy::page_bytes_for(SealPolicy::MIN_BYTES),
        max_messages: Some(2),
    };
    let (store, _) = server_store(policy).await;
    let (owner, id) = cosmos::owned_session(&store, "tree_big", "s_big").await;
    for i in 0..130 {
        let m = say(&format!("m{i:03}"), Parent::Latest, 20);
        store.append_message(&owner, &id, m).await.unwrap();
    }
    let before = store.get_session(&owner, &id).await.unwrap();
    let stored_before = stored_message_ids(&store, "tree_big").await;
    for refused in [
        store
            .append_message(&owner, &id, say("x", Parent::Message(mid("m001")), 20))
            .await
            .map(drop),
        store
            .append_message(&owner, &id, say("x", Parent::Root, 20))
            .await
            .map(drop),
    ] {
        match refused {
            Err(StoreError::Invalid(e)) => {
                assert_eq!(e.field, "parent_id");
                assert!(e.message.contains("one atomic write"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.get_session(&owner, &id).await.unwrap(), before);
    assert_eq!(stored_message_ids(&store, "tree_big").await, stored_before);
    store
        .append_message(&owner, &id, say("near", Parent::Message(mid("m120")), 20))
        .await
        .unwrap();
    let session = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(session.messages.len(), 122);
    assert_eq!(session.total_message_count, 131);
}

/// A message as stored before trees: no `parent_id`.
fn legacy_message(i: usize, user: &str) -> Value {
    json!({
        "id": format!("old{i}"),
        "content": format!("legacy {i}"),
        "message_type": if i.is_multiple_of(2) { "user" } else { "assistant" },
        "user_id": user,
        "metadata": {},
        "created_at": format!("2024-01-01T00:00:0{i}.000000Z"),
    })
}

/// Takes everything a context read hands over: newest first, as it comes.
#[derive(Default)]
struct Everything(Vec<ChatMessage>);

impl ContextSink for Everything {
    fn leading(&mut self, system: Vec<ChatMessage>) -> bool {
        assert!(system.is_empty(), "no system messages here");
        true
    }
    fn older(&mut self, newest_first: Vec<ChatMessage>) -> bool {
        self.0.extend(newest_first);
        true
    }
}

/// Documents written before trees (no `parent_id`, no
/// `total_message_count`, sealed pages) read as a chain, across the pages'
/// boundaries too, and branch like any other.
#[tokio::test]
async fn sessions_written_before_trees_read_as_a_chain_and_branch() {
    let (store, database) = server_store(SealPolicy::default()).await;
    let user = "tree_legacy";
    let container = store.container().unwrap();
    for page in 0..2u32 {
        let messages: Vec<Value> = (0..3)
            .map(|i| legacy_message(page as usize * 3 + i, user))
            .collect();
        let doc = json!({
            "id": format!("s_legacy~{page:06}"), "user_id": user, "doc_type": "session_page",
            "session_id": "s_legacy", "page": page, "messages": messages,
        });
        container
            .upsert_item(user.to_owned(), doc["id"].as_str().unwrap(), &doc, None)
            .await
            .unwrap();
    }
    let session = json!({
        "id": "s_legacy", "user_id": user, "session_name": "old", "is_active": true,
        "archived_at": null, "context": {}, "doc_type": "session",
        "messages": [legacy_message(6, user), legacy_message(7, user)],
        "message_count": 8, "last_message_at": "2024-01-01T00:00:07.000000Z",
        "created_at": "2024-01-01T00:00:00.000000Z", "updated_at": "2024-01-01T00:00:07.000000Z",
        "sealed_page_sizes": [3, 3],
    });
    container
        .upsert_item(user.to_owned(), "s_legacy", &session, None)
        .await
        .unwrap();
    let owner = Owner::User(UserId::parse(user).unwrap());
    let id = SessionId::parse("s_legacy").unwrap();
    let parent = |m: &ChatMessage| m.parent_id.as_ref().map(MessageId::to_string);
    let whole = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(whole.total_message_count, 8);
    for (i, m) in whole.messages.iter().enumerate() {
        assert_eq!(parent(m), i.checked_sub(1).map(|p| format!("old{p}")));
    }
    // All eight, as they were written but for the parents.
    let legacy: Vec<ChatMessage> = (0..8)
        .map(|i| serde_json::from_value(legacy_message(i, user)).unwrap())
        .collect();
    let old: Vec<String> = (0..8).map(|i| format!("old{i}")).collect();
    assert_eq!(ids(&whole.messages), old);
    assert_eq!(whole.messages, conformance::chained(&legacy));
    let tail = store.get_session_tail(&owner, &id, 2).await.unwrap().value;
    assert_eq!(
        parent(&tail.messages[0]),
        Some("old5".into()),
        "across the page"
    );
    let page = store
        .list_messages(
            &owner,
            &id,
            MessageQuery {
                limit: 3,
                before: Some(6),
            },
        )
        .await
        .unwrap();
    assert_eq!(parent(page.messages.last().unwrap()), Some("old2".into()));
    let mut context = Everything::default();
    store.read_context(&owner, &id, &mut context).await.unwrap();
    let read: Vec<_> = context.0.iter().rev().map(parent).collect();
    let chain: Vec<_> = (0..8)
        .map(|i: usize| i.checked_sub(1).map(|p| format!("old{p}")))
        .collect();
    assert_eq!(read, chain, "the context read, across the pages");
    // The streamed read (what a GET serves): every page read once, the
    // document's first message named by the newest page, read anyway.
    let (streamed, requests) = counted(&store, &database, async {
        use futures::TryStreamExt as _;
        let read = store
            .read_session(&owner, &id, None)
            .await
            .unwrap()
            .unwrap();
        let older: Vec<ChatMessage> = read.older.unwrap().try_concat().await.unwrap();
        older.into_iter().chain(read.newest).collect::<Vec<_>>()
    })
    .await;
    assert_eq!(streamed.iter().map(parent).collect::<Vec<_>>(), chain);
    assert_eq!(requests, 3, "the document and each of its two pages, once");
    // A fork in the document: the message leaving it names its parent.
    store
        .append_message(&owner, &id, say("new", Parent::Message(mid("old6")), 10))
        .await
        .unwrap();
    let tree = store
        .list_tree(
            &owner,
            &id,
            TreeQuery {
                limit: 100,
                after: 0,
            },
        )
        .await
        .unwrap();
    let parents: HashMap<String, Option<String>> = tree
        .messages
        .iter()
        .map(|m| (m.id.to_string(), parent(m)))
        .collect();
    assert_eq!(parents["old7"], Some("old6".into()));
    assert_eq!(parents["new"], Some("old6".into()));
    assert_eq!(parents["old3"], Some("old2".into()));
    assert_eq!(tree.current_message_id, Some(mid("new")));
    let back = store
        .switch_branch(&owner, &id, &mid("old7"), None)
        .await
        .unwrap()
        .value;
    assert_eq!(back.messages.len(), 8);
    assert_eq!(
        back.messages[7].siblings,
        Some(vec![mid("old7"), mid("new")])
    );
}

/// Deleting a session, or erasing its user, removes its alternatives too.
#[tokio::test]
async fn alternatives_go_with_their_session() {
    let (store, _) = server_store(SealPolicy::default()).await;
    for (user, session) in [("tree_gone", "s_deleted"), ("tree_erased", "s_erased")] {
        let (owner, id) = cosmos::owned_session(&store, user, session).await;
        for m in ["a", "b", "c"] {
            store
                .append_message(&owner, &id, say(m, Parent::Latest, 10))
                .await
                .unwrap();
        }
        for (m, parent) in [("b2", "a"), ("c2", "b")] {
            let fork = say(m, Parent::Message(mid(parent)), 10);
            store.append_message(&owner, &id, fork).await.unwrap();
        }
        assert!(!documents(&store, user).await[BRANCH_DOC_TYPE].is_empty());
    }
    let owner = Owner::User(UserId::parse("tree_gone").unwrap());
    store
        .delete_session(&owner, &SessionId::parse("s_deleted").unwrap(), None)
        .await
        .unwrap();
    assert!(documents(&store, "tree_gone").await.is_empty());
    let erased = store
        .erase_user(
            &UserId::parse("tree_erased").unwrap(),
            std::time::Instant::now() + std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(erased.complete);
    assert!(documents(&store, "tree_erased").await.is_empty());
}

/// What one writer of the concurrent test did: the messages it stored, and
/// the parent it named for each (`None`: the latest).
type Written = Vec<(MessageId, Option<MessageId>)>;

async fn writer(store: CosmosStore, owner: Owner, id: SessionId, w: usize) -> Written {
    let mut mine = Vec::new();
    for step in 0..8 {
        let new = format!("w{w}_{step}");
        let parent = match (w + step) % 4 {
            0 | 3 => None,
            1 => Some(mid("a")),
            _ => Some(mid("b")),
        };
        let p = parent.clone().map_or(Parent::Latest, Parent::Message);
        until_through(|| store.append_message(&owner, &id, say(&new, p.clone(), 50))).await;
        mine.push((mid(&new), parent));
        if step % 3 == 2 {
            let c = mid("c");
            until_through(|| store.switch_branch(&owner, &id, &c, None)).await;
        }
    }
    mine
}

/// Three processes (stores with their own caches and turns) fork, switch
/// and append on one session while the server throttles, fails, resets
/// connections and loses answers: every message is stored once, under the
/// parent its writer named, in exactly one document, and the tree is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_under_faults_keep_the_tree_whole() {
    let (client, config) = cosmos::server_client().await;
    let open = || CosmosStore::open(&client, &config.database, &config.sessions_container);
    let stores = [
        open().await.unwrap(),
        open().await.unwrap(),
        open().await.unwrap(),
    ];
    let (owner, id) = cosmos::owned_session(&stores[0], "tree_faults", "s_faults").await;
    for m in ["a", "b", "c"] {
        stores[0]
            .append_message(&owner, &id, say(m, Parent::Latest, 50))
            .await
            .unwrap();
    }
    cosmos::set_faults(
        &config.database,
        json!({
            "seed": 23, "throttle": 0.05, "retry_after_ms": 10, "unavailable": 0.04,
            "reset": 0.04, "lost_response": 0.06, "delay": 0.1, "delay_ms": 10,
        }),
    )
    .await;
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(w, store)| tokio::spawn(writer(store.clone(), owner.clone(), id.clone(), w)))
        .collect();
    let mut written: Written = ["a", "b", "c"].iter().map(|m| (mid(m), None)).collect();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    let report = cosmos::clear_faults(&config.database).await;
    for kind in ["lost_response", "reset", "unavailable"] {
        assert!(report["injected"][kind].as_u64().unwrap() > 0, "{report}");
    }
    let fresh = open().await.unwrap();
    let tree = fresh
        .list_tree(
            &owner,
            &id,
            TreeQuery {
                limit: 1000,
                after: 0,
            },
        )
        .await
        .unwrap();
    let parents: HashMap<MessageId, Option<MessageId>> = tree
        .messages
        .iter()
        .map(|m| (m.id.clone(), m.parent_id.clone()))
        .collect();
    assert_eq!(parents.len(), tree.messages.len(), "each message once");
    let want: HashSet<&MessageId> = written.iter().map(|(m, _)| m).collect();
    let have: HashSet<&MessageId> = parents.keys().collect();
    assert_eq!(have, want, "every message kept");
    for (m, named) in &written {
        if let Some(named) = named {
            assert_eq!(parents[m].as_ref(), Some(named), "{m} under {named}");
        }
    }
    let session = fresh.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(session.total_message_count, tree.messages.len() as u64);
    let mut before = None;
    for m in &session.messages {
        assert_eq!(m.parent_id, before, "the current branch is a path");
        before = Some(m.id.clone());
    }
    let mut stored = stored_message_ids(&fresh, "tree_faults").await;
    stored.sort();
    let mut expected: Vec<String> = want.iter().map(|m| m.to_string()).collect();
    expected.sort();
    assert_eq!(stored, expected, "each message in exactly one document");
}

/// A message made by branching sorts after everything the session holds,
/// even when this instance's clock is behind the one that wrote the rest:
/// it is the newest child, which a switch through its parent shows.
#[tokio::test]
async fn a_branch_made_later_is_the_newest_child_whatever_the_clocks() {
    let (store, _) = server_store(SealPolicy::default()).await;
    let (owner, id) = cosmos::owned_session(&store, "tree_clock", "s_clock").await;
    for m in ["a", "b"] {
        store
            .append_message(&owner, &id, say(m, Parent::Latest, 10))
            .await
            .unwrap();
    }
    // Another instance, an hour ahead, wrote `b`.
    let container = store.container().unwrap();
    let mut doc: Value = container
        .read_item("tree_clock".to_owned(), "s_clock", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let ahead = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::hours(1));
    let ahead = json!(ahead);
    doc["messages"][1]["created_at"] = ahead.clone();
    doc["last_message_at"] = ahead.clone();
    doc["updated_at"] = ahead;
    container
        .replace_item("tree_clock".to_owned(), "s_clock", &doc, None)
        .await
        .unwrap();
    let b2 = store
        .append_message(&owner, &id, say("b2", Parent::Message(mid("a")), 10))
        .await
        .unwrap()
        .message;
    let b = store
        .read_branch(&owner, &id, &mid("b"))
        .await
        .unwrap()
        .value;
    assert!(b2.created_at > b.messages[1].created_at);
    let via_a = store
        .read_branch(&owner, &id, &mid("a"))
        .await
        .unwrap()
        .value;
    assert_eq!(ids(&via_a.messages), ["a", "b2"], "the newest child");
    assert_eq!(via_a.messages[1].siblings, Some(vec![mid("b"), mid("b2")]));
}
