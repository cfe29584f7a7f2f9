//! The `MigrationStore` side of the suite: imports (create, merge, rerun,
//! another owner's session) and run checkpoints, including their
//! compare-and-set under concurrent writers.

use std::sync::Arc;

use chat_sessions::{
    domain::{ChatMessage, MessageId, MessageType, SessionId, Timestamp, UserId},
    store::{
        DynMigrationStore, ETag, ImportOutcome, ListQuery, Owner, SessionImport, StoreError,
        StoreResult, Versioned,
    },
};
use serde_json::json;

use super::{chained, message, new_session, sid, unique, user};

/// A legacy message as the migration hands it over: its own id, owner and
/// time (`second` seconds into 2023).
fn legacy(id: &str, second: u32, owner: Option<&UserId>) -> ChatMessage {
    ChatMessage {
        tool_calls: None,
        tool_call_id: None,
        name: None,
        parent_id: None,
        edited_at: None,
        siblings: None,
        id: MessageId::parse(id).unwrap(),
        content: format!("legacy {id}"),
        message_type: MessageType::Assistant,
        user_id: owner.cloned(),
        metadata: json!({ "legacy_id": id }).as_object().unwrap().clone(),
        created_at: Timestamp::parse(&format!(
            "2023-01-01T00:{:02}:{:02}Z",
            second / 60,
            second % 60
        ))
        .unwrap(),
    }
}

/// An import of `messages`, sorted as the migration sorts them.
fn import_of(
    id: &SessionId,
    owner: Option<&UserId>,
    mut messages: Vec<ChatMessage>,
) -> SessionImport {
    messages.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    SessionImport {
        id: id.clone(),
        user_id: owner.cloned(),
        messages,
    }
}

fn ids(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

fn assert_precondition_failed<T: std::fmt::Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::PreconditionFailed)),
        "{result:?}"
    );
}

pub async fn import_creates_the_session_in_order_with_true_counters(store: DynMigrationStore) {
    let alice = user(&unique("alice"));
    let id = sid(&unique("s"));
    // Two messages share a second: (created_at, id) decides.
    let import = import_of(
        &id,
        Some(&alice),
        vec![
            legacy("old_c", 30, Some(&alice)),
            legacy("old_b", 10, Some(&alice)),
            legacy("old_a", 10, Some(&alice)),
            legacy("old_d", 45, None),
        ],
    );
    let outcome = store.import_messages(import.clone()).await.unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            created: true,
            added: 4,
            already_present: 0
        }
    );
    let s = store
        .get_session(&Owner::User(alice.clone()), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(ids(&s.messages), ["old_a", "old_b", "old_c", "old_d"]);
    assert_eq!(
        s.messages,
        chained(&import.messages),
        "ids, owners, metadata, times kept; each follows the one before"
    );
    assert_eq!(s.user_id.as_ref(), Some(&alice));
    assert!(s.is_active);
    assert_eq!(s.message_count, 4);
    assert_eq!(s.last_message_at, Some(import.messages[3].created_at));
    assert_eq!(s.created_at, import.messages[0].created_at);
    assert!(s.updated_at >= import.messages[3].created_at);
    let listed = store
        .list_sessions(
            &Owner::User(alice),
            &ListQuery {
                limit: 50,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.sessions.len(), 1, "listed once, like any session");
    assert_eq!(listed.sessions[0].id, id);
    assert_eq!(listed.sessions[0].message_count, 4);
}

pub async fn importing_again_adds_nothing_and_changes_nothing(store: DynMigrationStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = sid(&unique("s"));
    let import = import_of(
        &id,
        Some(&alice),
        (0..5)
            .map(|i| legacy(&format!("old_{i}"), i, Some(&alice)))
            .collect(),
    );
    store.import_messages(import.clone()).await.unwrap();
    let before = store.get_session(&owner, &id).await.unwrap();
    let again = store.import_messages(import).await.unwrap();
    assert_eq!(
        again,
        ImportOutcome {
            created: false,
            added: 0,
            already_present: 5
        }
    );
    assert_eq!(
        store.get_session(&owner, &id).await.unwrap(),
        before,
        "same messages, same version"
    );
}

pub async fn import_merges_only_the_missing_ids_in_order(store: DynMigrationStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = sid(&unique("s"));
    // A session the new API already wrote to.
    let created = store
        .create_session(new_session(&id, Some(&alice)))
        .await
        .unwrap()
        .value;
    let live = store
        .append_message(&owner, &id, message(Some("live"), "written today"))
        .await
        .unwrap()
        .message;
    let first = store
        .import_messages(import_of(
            &id,
            Some(&alice),
            vec![
                legacy("old_1", 1, Some(&alice)),
                legacy("old_3", 3, Some(&alice)),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        first,
        ImportOutcome {
            created: false,
            added: 2,
            already_present: 0
        }
    );
    // A later pass sees more of the session; a known id is never rewritten,
    // even when the legacy copy differs.
    let mut changed = legacy("old_1", 1, Some(&alice));
    changed.content = "a different copy".into();
    let second = store
        .import_messages(import_of(
            &id,
            Some(&alice),
            vec![
                legacy("old_0", 0, Some(&alice)),
                changed,
                legacy("old_2", 2, Some(&alice)),
                legacy("old_3", 3, Some(&alice)),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        second,
        ImportOutcome {
            created: false,
            added: 2,
            already_present: 2
        }
    );
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(
        ids(&s.messages),
        ["old_0", "old_1", "old_2", "old_3", "live"]
    );
    assert_eq!(s.messages[1].content, "legacy old_1");
    let mut live = live;
    live.parent_id = Some(s.messages[3].id.clone());
    assert_eq!(s.messages[4], live, "merged before it: it follows them");
    assert_eq!(s.message_count, 5);
    assert_eq!(s.last_message_at, Some(live.created_at));
    assert_eq!(s.created_at, created.created_at);
    assert_eq!(s.session_name, created.session_name);
    // The merged session still takes appends after its newest message.
    let next = store
        .append_message(&owner, &id, message(Some("after"), "later"))
        .await
        .unwrap();
    assert!(next.message.created_at >= live.created_at);
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.message_count, 6);
    assert_eq!(s.messages[5].id.as_str(), "after");
}

pub async fn import_into_another_owners_session_conflicts_and_changes_nothing(
    store: DynMigrationStore,
) {
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let bobs = sid(&unique("s"));
    store
        .create_session(new_session(&bobs, Some(&bob)))
        .await
        .unwrap();
    store
        .append_message(&Owner::User(bob.clone()), &bobs, message(None, "mine"))
        .await
        .unwrap();
    let unowned = sid(&unique("s"));
    store
        .create_session(new_session(&unowned, None))
        .await
        .unwrap();
    let before_bobs = store
        .get_session(&Owner::User(bob.clone()), &bobs)
        .await
        .unwrap();
    let before_unowned = store
        .get_session(&Owner::Anonymous, &unowned)
        .await
        .unwrap();
    for (id, owner) in [
        (&bobs, Some(&alice)),
        (&bobs, None),
        (&unowned, Some(&alice)),
    ] {
        let result = store
            .import_messages(import_of(id, owner, vec![legacy("old_x", 1, owner)]))
            .await;
        assert!(
            matches!(result, Err(StoreError::Conflict(_))),
            "{id} as {owner:?}: {result:?}"
        );
    }
    assert_eq!(
        store.get_session(&Owner::User(bob), &bobs).await.unwrap(),
        before_bobs
    );
    assert_eq!(
        store
            .get_session(&Owner::Anonymous, &unowned)
            .await
            .unwrap(),
        before_unowned
    );
    assert!(matches!(
        store.get_session(&Owner::User(alice), &bobs).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn an_unknown_run_has_no_checkpoint(store: DynMigrationStore) {
    assert_eq!(store.load_checkpoint(&unique("run")).await.unwrap(), None);
}

pub async fn a_saved_checkpoint_loads_back_exactly(store: DynMigrationStore) {
    let run = unique("run");
    let state = r#"{"position":"käse \"7\"\n","step":1}"#;
    let first = store.save_checkpoint(&run, state, None).await.unwrap();
    assert_eq!(
        store.load_checkpoint(&run).await.unwrap(),
        Some(Versioned {
            value: state.to_owned(),
            etag: first.clone()
        })
    );
    let second = store
        .save_checkpoint(&run, "step 2", Some(&first))
        .await
        .unwrap();
    assert_ne!(second, first, "every save is a new version");
    assert_eq!(
        store.load_checkpoint(&run).await.unwrap(),
        Some(Versioned {
            value: "step 2".to_owned(),
            etag: second
        })
    );
    assert_eq!(
        store.load_checkpoint(&unique("other_run")).await.unwrap(),
        None,
        "runs are kept apart"
    );
}

pub async fn a_checkpoint_save_from_a_wrong_version_is_refused_and_changes_nothing(
    store: DynMigrationStore,
) {
    let run = unique("run");
    let first = store.save_checkpoint(&run, "one", None).await.unwrap();
    let second = store
        .save_checkpoint(&run, "two", Some(&first))
        .await
        .unwrap();
    let current = store.load_checkpoint(&run).await.unwrap();
    assert_precondition_failed(store.save_checkpoint(&run, "fresh start", None).await);
    assert_precondition_failed(store.save_checkpoint(&run, "stale", Some(&first)).await);
    let bogus = ETag::new("\"not-a-version\"");
    assert_precondition_failed(store.save_checkpoint(&run, "bogus", Some(&bogus)).await);
    assert_eq!(store.load_checkpoint(&run).await.unwrap(), current);
    assert_eq!(current.unwrap().etag, second);
    // Expecting a version of a run that has none creates nothing.
    let missing = unique("run");
    assert_precondition_failed(store.save_checkpoint(&missing, "x", Some(&second)).await);
    assert_eq!(store.load_checkpoint(&missing).await.unwrap(), None);
}

/// `writers` tasks save `run`'s checkpoint at once, all expecting version
/// `expected`; returns each one's state and result.
async fn race(
    store: &DynMigrationStore,
    run: &str,
    expected: Option<ETag>,
    writers: usize,
) -> Vec<(String, StoreResult<ETag>)> {
    let start = Arc::new(tokio::sync::Barrier::new(writers));
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let (store, run, expected, start) = (
                store.clone(),
                run.to_owned(),
                expected.clone(),
                start.clone(),
            );
            tokio::spawn(async move {
                let state = format!("writer {i} of {run}");
                start.wait().await;
                let result = store.save_checkpoint(&run, &state, expected.as_ref()).await;
                (state, result)
            })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect()
}

/// Exactly one writer won, every other one was refused, and the stored state
/// is the winner's; returns the winner's version.
async fn one_winner(
    store: &DynMigrationStore,
    run: &str,
    results: Vec<(String, StoreResult<ETag>)>,
) -> ETag {
    let mut winners = Vec::new();
    for (state, result) in results {
        match result {
            Ok(etag) => winners.push((state, etag)),
            Err(StoreError::PreconditionFailed) => {}
            Err(e) => panic!("{state}: {e:?}, expected PreconditionFailed"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one save wins: {winners:?}");
    let (state, etag) = winners.remove(0);
    assert_eq!(
        store.load_checkpoint(run).await.unwrap(),
        Some(Versioned {
            value: state,
            etag: etag.clone()
        }),
        "the stored state is the winner's"
    );
    etag
}

pub async fn concurrent_checkpoint_saves_from_one_version_have_one_winner(
    store: DynMigrationStore,
) {
    let run = unique("run");
    let mut version = store.save_checkpoint(&run, "start", None).await.unwrap();
    // Several rounds, each from the version the last one left.
    for _ in 0..4 {
        let results = race(&store, &run, Some(version), 8).await;
        version = one_winner(&store, &run, results).await;
    }
}

pub async fn concurrent_first_checkpoint_saves_have_one_winner(store: DynMigrationStore) {
    for writers in [2, 8] {
        let run = unique("run");
        let results = race(&store, &run, None, writers).await;
        one_winner(&store, &run, results).await;
    }
}
