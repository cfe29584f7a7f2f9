//! The store conformance suite: one function per behaviour, for
//! `SessionStore` here, for `MigrationStore` in `migration.rs` and for
//! readiness in `health.rs`. Every
//! backend runs all of them through `conformance_suite!`.

#![allow(dead_code)]

mod health;
mod lifecycle;
mod migration;
pub mod search;
pub use health::*;
pub use lifecycle::*;
mod import;
pub use import::*;
mod trees;
pub use trees::*;
pub mod tools;
pub mod tree;
pub use migration::*;
pub use tools::{
    context_keeps_the_system_message_and_the_newest_that_fit,
    context_never_splits_a_tool_call_from_its_answers,
    context_of_a_long_session_reads_back_across_pages, tool_calls_and_tool_messages_round_trip,
};
pub use tree::*;

use std::{collections::HashSet, sync::Arc};

use chat_sessions::{
    domain::{
        ChatMessage, JsonObject, MessageId, MessageType, NewMessage, NewSession, SessionId,
        SessionPatch, Timestamp, UserId,
    },
    store::{DynStore, ETag, ListQuery, Owner, StoreError},
};
use serde_json::json;

/// Generates one `#[tokio::test]` per behaviour for a backend. `$factory` is
/// an async expression yielding `(DynMigrationStore, guard)` (the
/// `SessionStore` behaviours get it upcast to a `DynStore`); the guard lives
/// as long as the test (a temp directory, a server handle).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@tests $factory;
            create_then_get_returns_the_same_session,
            create_with_a_taken_id_conflicts_and_changes_nothing,
            get_of_a_missing_session_is_not_found,
            other_users_can_neither_see_nor_change_a_session,
            anonymous_reaches_any_session_by_id_and_lists_unowned_ones,
            append_keeps_order_and_counters,
            append_to_a_missing_session_is_not_found,
            append_of_the_same_id_is_stored_once,
            append_of_a_used_id_with_other_content_conflicts,
            append_falls_back_to_the_session_owner,
            update_applies_the_patch_and_bumps_updated_at,
            update_with_a_stale_etag_fails_and_changes_nothing,
            update_with_the_current_etag_succeeds,
            delete_removes_the_session_and_its_messages,
            delete_with_a_stale_etag_fails_and_keeps_the_session,
            list_orders_by_recent_activity_and_pages_without_gaps,
            list_filters_by_is_active,
            list_rejects_a_forged_continuation,
            sessions_version_moves_with_every_change_of_the_owner,
            concurrent_appends_are_all_kept,
            concurrent_retries_of_one_message_store_it_once,
            json_values_round_trip_exactly,
            conditional_read_skips_an_unchanged_session_only,
            messages_page_newest_first_without_gaps,
            a_tail_keeps_the_newest_messages_and_the_whole_counts,
            import_creates_the_session_in_order_with_true_counters,
            importing_again_adds_nothing_and_changes_nothing,
            import_merges_only_the_missing_ids_in_order,
            import_into_another_owners_session_conflicts_and_changes_nothing,
            an_unknown_run_has_no_checkpoint,
            a_saved_checkpoint_loads_back_exactly,
            a_checkpoint_save_from_a_wrong_version_is_refused_and_changes_nothing,
            concurrent_checkpoint_saves_from_one_version_have_one_winner,
            concurrent_first_checkpoint_saves_have_one_winner,
            export_streams_every_session_of_the_owner_with_its_messages,
            export_lists_each_session_once_while_the_owner_keeps_writing,
            erase_deletes_everything_of_the_user_and_nothing_else,
            erase_continues_where_an_interrupted_call_stopped,
            archiving_sets_archived_at_and_restoring_clears_it,
            retention_finds_the_sessions_each_rule_applies_to,
            retention_archives_then_deletes_and_a_dry_run_changes_nothing,
            retention_leaves_a_session_touched_since_it_was_found,
            import_session_creates_it_with_the_files_fields_and_order,
            import_session_creates_a_session_without_messages,
            import_session_into_an_existing_session_adds_only_what_it_lacks,
            import_session_of_any_length_reads_back_whole,
            sessions_of_others_names_only_other_owners_sessions,
            import_session_into_another_owners_session_conflicts_and_changes_nothing,
            a_reachable_store_is_ready_and_asking_changes_nothing,
            tool_calls_and_tool_messages_round_trip,
            context_keeps_the_system_message_and_the_newest_that_fit,
            context_never_splits_a_tool_call_from_its_answers,
            context_of_a_long_session_reads_back_across_pages,
            appends_name_their_parent_and_a_linear_session_is_a_chain,
            a_fork_becomes_the_current_branch_and_keeps_the_old_one,
            a_new_first_message_forks_at_the_root,
            an_unknown_parent_is_refused_and_changes_nothing,
            a_retried_fork_is_stored_once,
            switching_shows_the_newest_leaf_under_a_message,
            branch_operations_need_the_owner,
            the_tree_lists_every_message_with_its_parent_in_pages,
            an_edit_changes_one_message_in_place,
            deleting_a_message_reattaches_its_children,
            deleting_the_last_message_ends_the_branch_at_its_parent,
            deleting_a_subtree_removes_everything_under_it,
            reads_that_know_no_branches_read_the_current_one,
            a_fork_deep_in_a_long_session_keeps_every_message,
            concurrent_forks_switches_and_appends_lose_nothing,
            export_writes_every_branch_with_parents_and_the_current_one,
            import_session_restores_a_tree_and_its_current_branch,
            import_session_of_a_tree_moves_an_existing_branch_only_forward,
            a_chain_imported_before_trees_gets_its_other_branches,
            import_session_of_a_tree_with_a_stranger_parent_is_refused_and_writes_nothing,
            messages_without_parents_read_as_a_chain,
            an_export_imported_by_another_user_is_their_own_copy,
        );
    };
    (@tests $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = $factory.await;
                conformance::$name(store).await;
            }
        )*
    };
}

/// `messages` as a store serves them when they were stored without parents
/// (before conversations were trees): each follows the one before it.
pub fn chained(
    messages: &[chat_sessions::domain::ChatMessage],
) -> Vec<chat_sessions::domain::ChatMessage> {
    let mut before: Option<MessageId> = None;
    messages
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.parent_id = m.parent_id.or_else(|| before.clone());
            before = Some(m.id.clone());
            m
        })
        .collect()
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn sid(name: &str) -> SessionId {
    SessionId::parse(name).unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

pub fn new_session(id: &SessionId, owner: Option<&UserId>) -> NewSession {
    NewSession::new(
        Some(id.clone()),
        owner.cloned(),
        Some("Shopping Chat".into()),
        JsonObject::new(),
        Timestamp::now(),
    )
    .unwrap()
}

pub fn message(id: Option<&str>, content: &str) -> NewMessage {
    NewMessage::new(
        id.map(|i| MessageId::parse(i).unwrap()),
        content.into(),
        MessageType::User,
        None,
        JsonObject::new(),
    )
    .unwrap()
}

pub async fn created(store: &DynStore, owner: Option<&UserId>) -> SessionId {
    let id = sid(&unique("s"));
    store.create_session(new_session(&id, owner)).await.unwrap();
    id
}

pub(crate) fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

pub fn mid(id: &str) -> MessageId {
    MessageId::parse(id).unwrap()
}

/// The messages' ids, in order.
pub fn ids(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.to_string()).collect()
}

/// The messages without their sibling marks (which depend on the read).
pub fn unmarked(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut out = messages.to_vec();
    for m in &mut out {
        m.siblings = None;
    }
    out
}

/// Retries `op` while the store answers "unavailable" (what a client does
/// with a 503), at most 100 times; any other error fails the test.
pub async fn until_through<T, F, Fut>(mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    for _ in 0..100 {
        match op().await {
            Ok(out) => return out,
            Err(StoreError::Unavailable { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("never got through");
}

pub async fn create_then_get_returns_the_same_session(store: DynStore) {
    let alice = user(&unique("alice"));
    let id = sid(&unique("s"));
    let created = store
        .create_session(new_session(&id, Some(&alice)))
        .await
        .unwrap();
    assert_eq!(created.value.id, id);
    assert_eq!(created.value.user_id.as_ref(), Some(&alice));
    assert!(created.value.is_active);
    assert_eq!(created.value.message_count, 0);
    assert_eq!(created.value.last_message_at, None);
    assert_eq!(created.value.created_at, created.value.updated_at);
    let read = store.get_session(&Owner::User(alice), &id).await.unwrap();
    assert_eq!(read.value, created.value);
    assert_eq!(read.etag, created.etag);
}

pub async fn create_with_a_taken_id_conflicts_and_changes_nothing(store: DynStore) {
    let alice = user(&unique("alice"));
    let id = created(&store, Some(&alice)).await;
    let before = store
        .get_session(&Owner::User(alice.clone()), &id)
        .await
        .unwrap();
    let mut again = new_session(&id, Some(&alice));
    again.session_name = Some("other".into());
    let result = store.create_session(again).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let after = store.get_session(&Owner::User(alice), &id).await.unwrap();
    assert_eq!(before, after);
}

pub async fn get_of_a_missing_session_is_not_found(store: DynStore) {
    let alice = user(&unique("alice"));
    assert_not_found(
        store
            .get_session(&Owner::User(alice), &sid(&unique("nope")))
            .await,
    );
    assert_not_found(
        store
            .get_session(&Owner::Anonymous, &sid(&unique("nope")))
            .await,
    );
}

pub async fn other_users_can_neither_see_nor_change_a_session(store: DynStore) {
    let alice = user(&unique("alice"));
    let mallory = Owner::User(user(&unique("mallory")));
    let id = created(&store, Some(&alice)).await;
    assert_not_found(store.get_session(&mallory, &id).await);
    assert_not_found(
        store
            .update_session(
                &mallory,
                &id,
                &SessionPatch {
                    is_active: Some(false),
                    ..Default::default()
                },
                None,
            )
            .await,
    );
    assert_not_found(
        store
            .append_message(&mallory, &id, message(None, "hi"))
            .await,
    );
    assert_not_found(store.delete_session(&mallory, &id, None).await);
    let page = store
        .list_sessions(
            &mallory,
            &ListQuery {
                limit: 50,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert!(page.sessions.iter().all(|s| s.id != id));
    let intact = store
        .get_session(&Owner::User(alice), &id)
        .await
        .unwrap()
        .value;
    assert!(intact.is_active);
    assert_eq!(intact.message_count, 0);
}

pub async fn anonymous_reaches_any_session_by_id_and_lists_unowned_ones(store: DynStore) {
    let alice = user(&unique("alice"));
    let owned = created(&store, Some(&alice)).await;
    let unowned = created(&store, None).await;
    assert_eq!(
        store
            .get_session(&Owner::Anonymous, &owned)
            .await
            .unwrap()
            .value
            .id,
        owned
    );
    let appended = store
        .append_message(&Owner::Anonymous, &owned, message(None, "hi"))
        .await
        .unwrap();
    assert_eq!(
        appended.message.user_id.as_ref(),
        Some(&alice),
        "message takes the session's owner"
    );
    // A named user does not reach sessions without an owner.
    assert_not_found(
        store
            .get_session(&Owner::User(alice.clone()), &unowned)
            .await,
    );
    let mut seen = Vec::new();
    let mut continuation = None;
    loop {
        let page = store
            .list_sessions(
                &Owner::Anonymous,
                &ListQuery {
                    limit: 200,
                    is_active: None,
                    continuation,
                },
            )
            .await
            .unwrap();
        seen.extend(page.sessions.into_iter().map(|s| (s.id, s.user_id)));
        continuation = page.continuation;
        if continuation.is_none() {
            break;
        }
    }
    assert!(seen.iter().any(|(id, _)| *id == unowned));
    assert!(
        seen.iter().all(|(_, owner)| owner.is_none()),
        "only unowned sessions are listed"
    );
}

pub async fn append_keeps_order_and_counters(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let before = store.get_session(&owner, &id).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = message(None, &format!("message {i}"));
        m.message_type = if i % 2 == 0 {
            MessageType::User
        } else {
            MessageType::Assistant
        };
        m.metadata = json!({ "n": i }).as_object().unwrap().clone();
        let appended = store.append_message(&owner, &id, m).await.unwrap();
        assert!(appended.created);
        ids.push(appended.message.id.clone());
    }
    let after = store.get_session(&owner, &id).await.unwrap();
    let s = after.value;
    assert_eq!(s.message_count, 5);
    assert_eq!(s.messages.len(), 5);
    assert_eq!(
        s.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(s.messages[1].message_type, MessageType::Assistant);
    assert_eq!(s.messages[3].metadata["n"], json!(3));
    assert!(
        s.messages
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
    assert_eq!(s.last_message_at, Some(s.messages[4].created_at));
    assert!(s.updated_at >= s.messages[4].created_at);
    assert!(s.updated_at >= before.value.updated_at);
    assert_ne!(after.etag, before.etag);
}

pub async fn append_to_a_missing_session_is_not_found(store: DynStore) {
    let owner = Owner::User(user(&unique("alice")));
    assert_not_found(
        store
            .append_message(&owner, &sid(&unique("nope")), message(None, "x"))
            .await,
    );
}

pub async fn append_of_the_same_id_is_stored_once(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let first = store
        .append_message(&owner, &id, message(Some("msg_retry"), "hello"))
        .await
        .unwrap();
    assert!(first.created);
    let second = store
        .append_message(&owner, &id, message(Some("msg_retry"), "hello"))
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.message, first.message);
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.message_count, 1);
    assert_eq!(s.messages.len(), 1);
}

pub async fn append_of_a_used_id_with_other_content_conflicts(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    store
        .append_message(&owner, &id, message(Some("msg_1"), "hello"))
        .await
        .unwrap();
    let result = store
        .append_message(&owner, &id, message(Some("msg_1"), "bye"))
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.message_count, 1);
    assert_eq!(s.messages[0].content, "hello");
}

pub async fn append_falls_back_to_the_session_owner(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let appended = store
        .append_message(&owner, &id, message(None, "hi"))
        .await
        .unwrap();
    assert_eq!(appended.message.user_id.as_ref(), Some(&alice));
}

pub async fn update_applies_the_patch_and_bumps_updated_at(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let before = store.get_session(&owner, &id).await.unwrap();
    let context = json!({ "topic": "shoes", "nested": { "a": [1, 2] } })
        .as_object()
        .unwrap()
        .clone();
    let patch = SessionPatch {
        session_name: Some(Some("Renamed".into())),
        is_active: Some(false),
        context: Some(context.clone()),
    };
    let updated = store
        .update_session(&owner, &id, &patch, None)
        .await
        .unwrap();
    assert_eq!(updated.value.session_name.as_deref(), Some("Renamed"));
    assert!(!updated.value.is_active);
    assert_eq!(updated.value.context, context);
    assert!(updated.value.updated_at >= before.value.updated_at);
    assert_eq!(updated.value.created_at, before.value.created_at);
    assert_ne!(updated.etag, before.etag);
    let read = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(read, updated);
    // `Some(None)` clears the name; an empty patch leaves the rest alone.
    let cleared = store
        .update_session(
            &owner,
            &id,
            &SessionPatch {
                session_name: Some(None),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(cleared.value.session_name, None);
    assert!(!cleared.value.is_active);
    assert_eq!(cleared.value.context, context);
}

pub async fn update_with_a_stale_etag_fails_and_changes_nothing(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let first = store.get_session(&owner, &id).await.unwrap();
    store
        .append_message(&owner, &id, message(None, "moves the etag"))
        .await
        .unwrap();
    let current = store.get_session(&owner, &id).await.unwrap();
    let patch = SessionPatch {
        session_name: Some(Some("late".into())),
        ..Default::default()
    };
    let result = store
        .update_session(&owner, &id, &patch, Some(&first.etag))
        .await;
    assert!(
        matches!(result, Err(StoreError::PreconditionFailed)),
        "{result:?}"
    );
    let bogus = ETag::new("\"not-a-version\"");
    let result = store
        .update_session(&owner, &id, &patch, Some(&bogus))
        .await;
    assert!(
        matches!(result, Err(StoreError::PreconditionFailed)),
        "{result:?}"
    );
    assert_eq!(store.get_session(&owner, &id).await.unwrap(), current);
}

pub async fn update_with_the_current_etag_succeeds(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let current = store.get_session(&owner, &id).await.unwrap();
    let patch = SessionPatch {
        is_active: Some(false),
        ..Default::default()
    };
    let updated = store
        .update_session(&owner, &id, &patch, Some(&current.etag))
        .await
        .unwrap();
    assert!(!updated.value.is_active);
}

pub async fn delete_removes_the_session_and_its_messages(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    store
        .append_message(&owner, &id, message(Some("msg_old"), "old"))
        .await
        .unwrap();
    store.delete_session(&owner, &id, None).await.unwrap();
    assert_not_found(store.get_session(&owner, &id).await);
    assert_not_found(store.delete_session(&owner, &id, None).await);
    // A new session with the same id starts empty.
    store
        .create_session(new_session(&id, Some(&alice)))
        .await
        .unwrap();
    let fresh = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(fresh.message_count, 0);
    assert!(fresh.messages.is_empty());
    let again = store
        .append_message(&owner, &id, message(Some("msg_old"), "new"))
        .await
        .unwrap();
    assert!(again.created);
}

pub async fn delete_with_a_stale_etag_fails_and_keeps_the_session(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let stale = store.get_session(&owner, &id).await.unwrap().etag;
    store
        .append_message(&owner, &id, message(None, "x"))
        .await
        .unwrap();
    let result = store.delete_session(&owner, &id, Some(&stale)).await;
    assert!(
        matches!(result, Err(StoreError::PreconditionFailed)),
        "{result:?}"
    );
    let current = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(current.value.message_count, 1);
    store
        .delete_session(&owner, &id, Some(&current.etag))
        .await
        .unwrap();
    assert_not_found(store.get_session(&owner, &id).await);
}

pub async fn list_orders_by_recent_activity_and_pages_without_gaps(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let bob = user(&unique("bob"));
    created(&store, Some(&bob)).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(created(&store, Some(&alice)).await);
    }
    // Activity on the oldest session moves it to the front.
    store
        .append_message(&owner, &ids[0], message(None, "bump"))
        .await
        .unwrap();
    let mut listed = Vec::new();
    let mut continuation = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_sessions(
                &owner,
                &ListQuery {
                    limit: 3,
                    is_active: None,
                    continuation,
                },
            )
            .await
            .unwrap();
        assert!(page.sessions.len() <= 3);
        pages += 1;
        listed.extend(page.sessions);
        continuation = page.continuation;
        if continuation.is_none() {
            break;
        }
    }
    assert!(pages >= 3, "7 sessions in pages of 3");
    assert_eq!(listed.len(), 7, "every session once, no other user's");
    let listed_ids: HashSet<_> = listed.iter().map(|s| s.id.clone()).collect();
    assert_eq!(listed_ids, ids.iter().cloned().collect());
    assert_eq!(listed[0].id, ids[0]);
    assert_eq!(listed[0].message_count, 1);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].updated_at >= w[1].updated_at)
    );
}

pub async fn list_filters_by_is_active(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let active = created(&store, Some(&alice)).await;
    let archived = created(&store, Some(&alice)).await;
    store
        .update_session(
            &owner,
            &archived,
            &SessionPatch {
                is_active: Some(false),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let only = |is_active| {
        let store = store.clone();
        let owner = owner.clone();
        async move {
            store
                .list_sessions(
                    &owner,
                    &ListQuery {
                        limit: 50,
                        is_active: Some(is_active),
                        continuation: None,
                    },
                )
                .await
                .unwrap()
                .sessions
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only(true).await, vec![active]);
    assert_eq!(only(false).await, vec![archived]);
}

/// A store that keeps a version of an owner's sessions (the API caches
/// listings on it) changes it with every change a listing would show, and
/// only for that owner's listing; a store without one says `None` always.
pub async fn sessions_version_moves_with_every_change_of_the_owner(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let version = || async { store.sessions_version(&owner).await.unwrap() };
    let first = version().await;
    let id = created(&store, Some(&alice)).await;
    let mut seen = vec![first.clone()];
    let mut changed = |v: Option<chat_sessions::store::ETag>, what: &str| {
        if first.is_none() {
            assert!(
                v.is_none(),
                "{what}: a store without versions stays without"
            );
        } else {
            assert!(
                !seen.contains(&v),
                "{what}: the version did not change: {v:?}"
            );
        }
        seen.push(v);
    };
    changed(version().await, "create");
    store
        .append_message(&owner, &id, message(None, "hello"))
        .await
        .unwrap();
    changed(version().await, "append");
    let archive = SessionPatch {
        session_name: None,
        is_active: Some(false),
        context: None,
    };
    store
        .update_session(&owner, &id, &archive, None)
        .await
        .unwrap();
    changed(version().await, "archive");
    // Another owner's writes never show in this owner's listing; whether
    // they move this version does not matter, but reading it is harmless.
    let bob = user(&unique("bob"));
    created(&store, Some(&bob)).await;
    let before_delete = version().await;
    store.delete_session(&owner, &id, None).await.unwrap();
    let after_delete = version().await;
    if first.is_some() {
        assert_ne!(after_delete, before_delete, "delete");
    }
    // Unchanged data, unchanged version: the cache is worth having.
    assert_eq!(version().await, after_delete);
}

pub async fn list_rejects_a_forged_continuation(store: DynStore) {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    created(&store, Some(&alice)).await;
    // Plain garbage, and well-formed base64 of text no store hands out: a
    // newline or a non-ASCII character must not reach a request header (the
    // fuzzer found a 503 there).
    let forged = [
        "not a token".to_owned(),
        URL_SAFE_NO_PAD.encode("{\"token\":\"a\nb\"}"),
        URL_SAFE_NO_PAD.encode("é"),
        URL_SAFE_NO_PAD.encode("{}"),
    ];
    for token in forged {
        let result = store
            .list_sessions(
                &owner,
                &ListQuery {
                    limit: 5,
                    is_active: None,
                    continuation: Some(token.clone()),
                },
            )
            .await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{token}: {result:?}"
        );
    }
}

pub async fn concurrent_appends_are_all_kept(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    // Each writer is a real client: "unavailable" (a 503 with Retry-After
    // over HTTP) is retried with the same message id.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (store, owner, id) = (store.clone(), owner.clone(), id.clone());
            // A careful client: an append that answers Unavailable (the
            // optimistic-concurrency deadline on one hot document ran out)
            // is retried with the same message id.
            tokio::spawn(async move {
                let new = message(Some(&format!("c_{i:03}")), &format!("m{i}"));
                for _ in 0..20 {
                    match store.append_message(&owner, &id, new.clone()).await {
                        Err(StoreError::Unavailable { .. }) => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await
                        }
                        other => return other,
                    }
                }
                panic!("append {i} still unavailable after 20 attempts")
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.message_count, 200);
    assert_eq!(s.messages.len(), 200);
    let ids: HashSet<_> = s.messages.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids.len(), 200, "each message exactly once");
    let contents: HashSet<_> = s.messages.iter().map(|m| m.content.clone()).collect();
    assert_eq!(contents.len(), 200);
    assert!(
        s.messages
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
}

pub async fn concurrent_retries_of_one_message_store_it_once(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (store, owner, id) = (store.clone(), owner.clone(), id.clone());
            tokio::spawn(async move {
                store
                    .append_message(&owner, &id, message(Some("msg_same"), "once"))
                    .await
            })
        })
        .collect();
    let mut created_count = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().created {
            created_count += 1;
        }
    }
    assert_eq!(created_count, 1);
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.message_count, 1);
}

pub async fn json_values_round_trip_exactly(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = sid(&unique("s"));
    let context = json!({ "emoji": "💬", "n": 1.5, "deep": { "list": [null, true, "x"] } });
    let mut new = new_session(&id, Some(&alice));
    new.context = context.as_object().unwrap().clone();
    new.session_name = Some("Ünïcode \"quoted\" name".into());
    store.create_session(new).await.unwrap();
    let mut m = message(None, "line one\nline two — ✓");
    m.metadata = json!({ "type": "ai_response", "tokens": [1, 2, 3] })
        .as_object()
        .unwrap()
        .clone();
    m.message_type = MessageType::System;
    store.append_message(&owner, &id, m.clone()).await.unwrap();
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(serde_json::Value::Object(s.context), context);
    assert_eq!(s.session_name.as_deref(), Some("Ünïcode \"quoted\" name"));
    assert_eq!(s.messages[0].content, m.content);
    assert_eq!(s.messages[0].metadata, m.metadata);
    assert_eq!(s.messages[0].message_type, MessageType::System);
}

pub async fn conditional_read_skips_an_unchanged_session_only(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let first = store.get_session(&owner, &id).await.unwrap();
    let unchanged = store
        .get_session_if_changed(&owner, &id, Some(&first.etag))
        .await
        .unwrap();
    assert_eq!(unchanged, None);
    store
        .append_message(&owner, &id, message(None, "changes it"))
        .await
        .unwrap();
    let changed = store
        .get_session_if_changed(&owner, &id, Some(&first.etag))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.value.message_count, 1);
    assert_ne!(changed.etag, first.etag);
    // Knowing the version grants nothing: another user still gets NotFound.
    let mallory = Owner::User(user(&unique("mallory")));
    assert_not_found(
        store
            .get_session_if_changed(&mallory, &id, Some(&changed.etag))
            .await,
    );
    store.delete_session(&owner, &id, None).await.unwrap();
    assert_not_found(
        store
            .get_session_if_changed(&owner, &id, Some(&changed.etag))
            .await,
    );
}

async fn session_with(store: &DynStore, n: usize) -> (Owner, SessionId, Vec<MessageId>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(store, Some(&alice)).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let appended = store
            .append_message(&owner, &id, message(None, &format!("m{i}")))
            .await
            .unwrap();
        ids.push(appended.message.id);
    }
    (owner, id, ids)
}

pub async fn messages_page_newest_first_without_gaps(store: DynStore) {
    use chat_sessions::store::MessageQuery;
    let (owner, id, ids) = session_with(&store, 23).await;
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_messages(&owner, &id, MessageQuery { limit: 5, before })
            .await
            .unwrap();
        assert!(page.messages.len() <= 5);
        pages += 1;
        seen.extend(page.messages.into_iter().map(|m| m.id));
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
        assert!(pages < 50);
    }
    seen.reverse();
    assert_eq!(seen, ids, "every message once, in order");
    let first = store
        .list_messages(
            &owner,
            &id,
            MessageQuery {
                limit: 3,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first
            .messages
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        [ids[22].clone(), ids[21].clone(), ids[20].clone()]
    );
    let mallory = Owner::User(user(&unique("mallory")));
    assert_not_found(
        store
            .list_messages(
                &mallory,
                &id,
                MessageQuery {
                    limit: 3,
                    before: None,
                },
            )
            .await,
    );
}

pub async fn a_tail_keeps_the_newest_messages_and_the_whole_counts(store: DynStore) {
    let (owner, id, ids) = session_with(&store, 12).await;
    let tail = store.get_session_tail(&owner, &id, 4).await.unwrap().value;
    assert_eq!(
        tail.messages
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        ids[8..].to_vec()
    );
    assert_eq!(tail.message_count, 12);
    assert_eq!(tail.last_message_at, Some(tail.messages[3].created_at));
    let all = store
        .get_session_tail(&owner, &id, 100)
        .await
        .unwrap()
        .value;
    assert_eq!(all.messages.len(), 12);
}
