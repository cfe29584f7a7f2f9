//! The lifecycle side of the suite (issue 10): export streams, erasing a
//! user, `archived_at`, and the retention rules with their candidates.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use chat_sessions::{
    domain::{
        ChatMessage, MessageId, MessageType, Parent, SessionId, SessionPatch, Timestamp, UserId,
    },
    retention::{self, RetentionPolicy},
    store::{
        DynMigrationStore, DynStore, ExportItem, Owner, SessionImport, StoreError, export::export,
    },
};
use futures::TryStreamExt as _;
use serde_json::json;

use super::{created, message, sid, unique, user};

/// Messages of a long session: more than the embedded store reads at once.
const LONG: usize = 2100;

/// `n` old messages (one second apart in 2022) for an import.
fn old_messages(prefix: &str, n: usize, owner: &UserId) -> Vec<ChatMessage> {
    let start = Timestamp::parse("2022-01-01T00:00:00Z")
        .unwrap()
        .as_datetime();
    (0..n)
        .map(|i| ChatMessage {
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
            id: MessageId::parse(format!("{prefix}_{i:05}")).unwrap(),
            content: format!("message {i} · ünïcødé"),
            message_type: if i % 2 == 0 {
                MessageType::User
            } else {
                MessageType::Assistant
            },
            user_id: Some(owner.clone()),
            metadata: json!({ "i": i }).as_object().unwrap().clone(),
            created_at: Timestamp::from_datetime(start + chrono::Duration::seconds(i as i64)),
        })
        .collect()
}

/// An export as (session summary, its messages) pairs, in stream order;
/// checks that messages only ever follow their own session.
async fn exported(
    store: &DynStore,
    owner: &Owner,
) -> Vec<(chat_sessions::domain::SessionSummary, Vec<ChatMessage>)> {
    let items: Vec<ExportItem> = export(store.clone(), owner.clone())
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<(chat_sessions::domain::SessionSummary, Vec<ChatMessage>)> = Vec::new();
    for item in items {
        match item {
            ExportItem::Session { summary, .. } => out.push((summary, Vec::new())),
            ExportItem::Messages(id, mut messages) => {
                let (summary, all) = out.last_mut().expect("messages after their session");
                assert_eq!(summary.id, id, "messages follow their own session");
                assert!(!messages.is_empty(), "no empty message chunks");
                all.append(&mut messages);
            }
        }
    }
    out
}

async fn append(store: &DynStore, owner: &UserId, id: &SessionId, n: usize) {
    for i in 0..n {
        store
            .append_message(
                &Owner::User(owner.clone()),
                id,
                message(None, &format!("m{i}")),
            )
            .await
            .unwrap();
    }
}

/// Another version of the session's second message (under its first): one
/// message more in all, none more on the current branch.
async fn fork_after_first(store: &DynStore, owner: &UserId, id: &SessionId) {
    let owner = Owner::User(owner.clone());
    let session = store.get_session(&owner, id).await.unwrap().value;
    let mut fork = message(None, "another version");
    fork.parent = Parent::Message(session.messages[0].id.clone());
    store.append_message(&owner, id, fork).await.unwrap();
}

async fn archive(store: &DynStore, owner: &UserId, id: &SessionId, active: bool) {
    let patch = SessionPatch {
        is_active: Some(active),
        ..SessionPatch::default()
    };
    store
        .update_session(&Owner::User(owner.clone()), id, &patch, None)
        .await
        .unwrap();
}

pub async fn export_streams_every_session_of_the_owner_with_its_messages(
    migration: DynMigrationStore,
) {
    let store: DynStore = migration.clone();
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let a1 = created(&store, Some(&alice)).await;
    append(&store, &alice, &a1, 3).await;
    let archived = created(&store, Some(&alice)).await;
    append(&store, &alice, &archived, 1).await;
    archive(&store, &alice, &archived, false).await;
    let empty = created(&store, Some(&alice)).await;
    let long = sid(&unique("long"));
    migration
        .import_messages(SessionImport {
            id: long.clone(),
            user_id: Some(alice.clone()),
            messages: old_messages("long", LONG, &alice),
        })
        .await
        .unwrap();
    let b1 = created(&store, Some(&bob)).await;
    append(&store, &bob, &b1, 2).await;
    let unowned = created(&store, None).await;

    let alice_owner = Owner::User(alice.clone());
    let export = exported(&store, &alice_owner).await;
    let ids: Vec<&SessionId> = export.iter().map(|(s, _)| &s.id).collect();
    let expected: HashSet<&SessionId> = [&a1, &archived, &empty, &long].into();
    assert_eq!(ids.len(), 4, "each session once: {ids:?}");
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), expected);
    // Oldest first: the imported session dates from 2022.
    let keys: Vec<_> = export.iter().map(|(s, _)| (s.created_at, &s.id)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "in (created_at, id) order");
    assert_eq!(ids[0], &long);
    for (summary, messages) in &export {
        let stored = store.get_session(&alice_owner, &summary.id).await.unwrap();
        assert_eq!(*summary, stored.value.summary(), "{}", summary.id);
        assert_eq!(*messages, stored.value.messages, "{}", summary.id);
        assert_eq!(messages.len() as u64, summary.message_count);
    }
    let (_, long_messages) = export.iter().find(|(s, _)| s.id == long).unwrap();
    assert_eq!(long_messages.len(), LONG);
    assert_eq!(long_messages[0].id.as_str(), "long_00000");
    assert_eq!(
        long_messages[LONG - 1].content,
        format!("message {} · ünïcødé", LONG - 1)
    );
    let (archived_summary, _) = export.iter().find(|(s, _)| s.id == archived).unwrap();
    assert!(!archived_summary.is_active && archived_summary.archived_at.is_some());

    // Other owners see only their own; a stranger nothing.
    let bobs = exported(&store, &Owner::User(bob)).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].0.id, b1);
    assert_eq!(bobs[0].1.len(), 2);
    let unowned_export = exported(&store, &Owner::Anonymous).await;
    assert_eq!(
        unowned_export
            .iter()
            .map(|(s, _)| &s.id)
            .collect::<Vec<_>>(),
        [&unowned]
    );
    assert!(
        exported(&store, &Owner::User(user(&unique("nobody"))))
            .await
            .is_empty()
    );
}

pub async fn export_lists_each_session_once_while_the_owner_keeps_writing(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let mut ids = Vec::new();
    // More than one listing page of any backend.
    for _ in 0..230 {
        ids.push(created(&store, Some(&alice)).await);
    }
    let mut items = export(store.clone(), owner.clone());
    let mut seen: Vec<SessionId> = Vec::new();
    let mut deleted = None;
    while let Some(item) = items.try_next().await.unwrap() {
        let ExportItem::Session { summary, .. } = item else {
            continue;
        };
        seen.push(summary.id);
        if seen.len() == 5 {
            // Meanwhile the owner writes: every session not yet exported
            // becomes the most recently updated, one is deleted, one is new.
            for id in ids.iter().rev().take(40) {
                store
                    .append_message(&owner, id, message(None, "meanwhile"))
                    .await
                    .unwrap();
            }
            let gone = ids[150].clone();
            store.delete_session(&owner, &gone, None).await.unwrap();
            deleted = Some(gone);
            created(&store, Some(&alice)).await;
        }
    }
    let deleted = deleted.unwrap();
    let unique_seen: HashSet<&SessionId> = seen.iter().collect();
    assert_eq!(unique_seen.len(), seen.len(), "no session twice");
    for id in &ids {
        assert_eq!(
            unique_seen.contains(id),
            *id != deleted,
            "{id}: every session that existed throughout, once"
        );
    }
}

pub async fn erase_deletes_everything_of_the_user_and_nothing_else(migration: DynMigrationStore) {
    let store: DynStore = migration.clone();
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let a1 = created(&store, Some(&alice)).await;
    append(&store, &alice, &a1, 2).await;
    // A branch that is not current is erased, and counted, too.
    fork_after_first(&store, &alice, &a1).await;
    let a2 = created(&store, Some(&alice)).await;
    archive(&store, &alice, &a2, false).await;
    let long = sid(&unique("long"));
    migration
        .import_messages(SessionImport {
            id: long.clone(),
            user_id: Some(alice.clone()),
            messages: old_messages("erase", 300, &alice),
        })
        .await
        .unwrap();
    let b1 = created(&store, Some(&bob)).await;
    append(&store, &bob, &b1, 3).await;
    let unowned = created(&store, None).await;
    let bob_before = store
        .get_session(&Owner::User(bob.clone()), &b1)
        .await
        .unwrap();

    let far = Instant::now() + Duration::from_secs(600);
    let erased = store.erase_user(&alice, far).await.unwrap();
    assert_eq!(erased.sessions, 3);
    assert_eq!(erased.messages, 303, "every message of every branch");
    assert!(erased.complete);
    let alice_owner = Owner::User(alice.clone());
    for id in [&a1, &a2, &long] {
        assert!(matches!(
            store.get_session(&alice_owner, id).await,
            Err(StoreError::NotFound)
        ));
    }
    assert!(exported(&store, &alice_owner).await.is_empty());
    // Nobody else lost anything.
    let bob_after = store.get_session(&Owner::User(bob), &b1).await.unwrap();
    assert_eq!(bob_after, bob_before);
    store
        .get_session(&Owner::Anonymous, &unowned)
        .await
        .unwrap();
    // Again: nothing left, nothing counted.
    let again = store.erase_user(&alice, far).await.unwrap();
    assert_eq!(
        (again.sessions, again.messages, again.complete),
        (0, 0, true)
    );
}

pub async fn erase_continues_where_an_interrupted_call_stopped(store: DynStore) {
    let alice = user(&unique("alice"));
    let mut ids = Vec::new();
    for _ in 0..130 {
        let id = created(&store, Some(&alice)).await;
        append(&store, &alice, &id, 1).await;
        ids.push(id);
    }
    let (mut sessions, mut messages, mut calls) = (0, 0, 0);
    loop {
        // A deadline already past: each call does one batch.
        let erased = store.erase_user(&alice, Instant::now()).await.unwrap();
        calls += 1;
        sessions += erased.sessions;
        messages += erased.messages;
        if erased.complete {
            break;
        }
        assert!(erased.sessions > 0, "every call makes progress");
        assert!(calls < 200);
    }
    assert!(calls > 1, "130 sessions take more than one batch");
    assert_eq!((sessions, messages), (130, 130));
    let list = store
        .list_sessions(
            &Owner::User(alice),
            &chat_sessions::store::ListQuery {
                limit: 10,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert!(list.sessions.is_empty());
}

pub async fn archiving_sets_archived_at_and_restoring_clears_it(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let fresh = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(fresh.archived_at, None);
    let before = Timestamp::now();
    archive(&store, &alice, &id, false).await;
    let archived = store.get_session(&owner, &id).await.unwrap().value;
    let at = archived.archived_at.expect("set when archived");
    assert!(at >= before && at <= Timestamp::now());
    assert!(!archived.is_active);
    // Archiving again, or renaming, keeps the time it was archived.
    archive(&store, &alice, &id, false).await;
    let rename = SessionPatch {
        session_name: Some(Some("renamed".into())),
        ..SessionPatch::default()
    };
    let renamed = store
        .update_session(&owner, &id, &rename, None)
        .await
        .unwrap()
        .value;
    assert_eq!(renamed.archived_at, Some(at));
    let listed = store
        .list_sessions(
            &owner,
            &chat_sessions::store::ListQuery {
                limit: 10,
                is_active: Some(false),
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.sessions[0].archived_at, Some(at));
    archive(&store, &alice, &id, true).await;
    let restored = store.get_session(&owner, &id).await.unwrap().value;
    assert!(restored.is_active);
    assert_eq!(restored.archived_at, None);
}

pub async fn retention_finds_the_sessions_each_rule_applies_to(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let active = created(&store, Some(&alice)).await;
    let archived = created(&store, Some(&alice)).await;
    append(&store, &alice, &archived, 2).await;
    archive(&store, &alice, &archived, false).await;
    let archived_at = store
        .get_session(&owner, &archived)
        .await
        .unwrap()
        .value
        .archived_at
        .unwrap();
    let past = Timestamp::parse("2000-01-01T00:00:00Z").unwrap();
    let future =
        Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::days(1));
    let found = |stream: chat_sessions::store::retention::CandidateStream| async move {
        stream
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect::<BTreeMap<_, _>>()
    };
    let untouched = found(store.untouched_before(future)).await;
    assert_eq!(untouched.keys().collect::<Vec<_>>(), [&active]);
    let candidate = &untouched[&active];
    assert_eq!(candidate.user_id.as_ref(), Some(&alice));
    assert_eq!(
        candidate.etag,
        store.get_session(&owner, &active).await.unwrap().etag,
        "found with its current version"
    );
    assert!(found(store.untouched_before(past)).await.is_empty());
    let due = found(store.archived_before(future)).await;
    assert_eq!(due.keys().collect::<Vec<_>>(), [&archived]);
    assert_eq!(due[&archived].since, archived_at);
    assert_eq!(due[&archived].message_count, 2);
    assert!(found(store.archived_before(archived_at)).await.is_empty());
}

pub async fn retention_archives_then_deletes_and_a_dry_run_changes_nothing(store: DynStore) {
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    let owner = Owner::User(alice.clone());
    let a1 = created(&store, Some(&alice)).await;
    append(&store, &alice, &a1, 2).await;
    fork_after_first(&store, &alice, &a1).await;
    let b1 = created(&store, Some(&bob)).await;
    let far = Instant::now() + Duration::from_secs(600);
    let in_days = |days: i64| {
        Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::days(days))
    };
    let archive_30 = RetentionPolicy {
        archive_after_days: Some(30),
        delete_after_days: None,
    };
    // Not due yet.
    let r = retention::run(store.as_ref(), archive_30, Timestamp::now(), false, far)
        .await
        .unwrap();
    assert_eq!((r.archived, r.deleted, r.complete), (0, 0, true));
    // Due 31 days from now; a dry run only counts.
    let before = store.get_session(&owner, &a1).await.unwrap();
    let r = retention::run(store.as_ref(), archive_30, in_days(31), true, far)
        .await
        .unwrap();
    assert!(r.dry_run);
    assert_eq!(r.archived, 2);
    assert_eq!(store.get_session(&owner, &a1).await.unwrap(), before);
    let r = retention::run(store.as_ref(), archive_30, in_days(31), false, far)
        .await
        .unwrap();
    assert_eq!((r.archived, r.deleted, r.skipped), (2, 0, 0));
    let archived = store.get_session(&owner, &a1).await.unwrap().value;
    assert!(!archived.is_active && archived.archived_at.is_some());
    assert_eq!(archived.messages, before.value.messages);
    // Archived sessions are deleted once archived for 30 days.
    let delete_30 = RetentionPolicy {
        archive_after_days: None,
        delete_after_days: Some(30),
    };
    let r = retention::run(store.as_ref(), delete_30, in_days(29), false, far)
        .await
        .unwrap();
    assert_eq!(r.deleted, 0);
    let r = retention::run(store.as_ref(), delete_30, in_days(31), true, far)
        .await
        .unwrap();
    assert_eq!(
        (r.deleted, r.messages_deleted),
        (2, 3),
        "every branch's messages"
    );
    store.get_session(&owner, &a1).await.unwrap();
    let r = retention::run(store.as_ref(), delete_30, in_days(31), false, far)
        .await
        .unwrap();
    assert_eq!((r.deleted, r.messages_deleted, r.complete), (2, 3, true));
    assert!(matches!(
        store.get_session(&owner, &a1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_session(&Owner::User(bob), &b1).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn retention_leaves_a_session_touched_since_it_was_found(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let future =
        Timestamp::from_datetime(Timestamp::now().as_datetime() + chrono::Duration::days(1));
    let candidate: Vec<_> = store.untouched_before(future).try_collect().await.unwrap();
    assert_eq!(candidate.len(), 1);
    // The user writes between the sweep's look and its act.
    append(&store, &alice, &id, 1).await;
    let patch = SessionPatch {
        is_active: Some(false),
        ..SessionPatch::default()
    };
    let acted = store
        .update_session(&owner, &id, &patch, Some(&candidate[0].etag))
        .await;
    assert!(
        matches!(acted, Err(StoreError::PreconditionFailed)),
        "{acted:?}"
    );
    assert!(
        store
            .get_session(&owner, &id)
            .await
            .unwrap()
            .value
            .is_active
    );
}
