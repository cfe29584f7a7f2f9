//! A conversation as a tree, the same on every backend: appends name their
//! parent, an append under an earlier message starts a branch that becomes
//! current, switching shows another branch, and edits and deletes change
//! one message. Everything that knows nothing of branches reads the
//! current one.

use std::collections::{HashMap, HashSet};

use chat_sessions::{
    domain::{
        ChatMessage, DeleteScope, JsonObject, MessageEdit, MessageId, MessageType, NewMessage,
        Parent, SessionId, UserId,
    },
    store::{DynStore, MessageQuery, Owner, StoreError, TreeQuery},
};
use serde_json::json;

use super::{assert_not_found, created, ids, message, mid, unique, unmarked, until_through, user};

/// A user message `id` under `parent`.
fn under(id: &str, parent: Parent) -> NewMessage {
    let mut m = message(Some(id), &format!("text of {id}"));
    m.parent = parent;
    m
}

/// A session of alice's with messages `a`, `b`, `c` in a row.
async fn abc(store: &DynStore) -> (UserId, Owner, SessionId) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(store, Some(&alice)).await;
    for m in ["a", "b", "c"] {
        store
            .append_message(&owner, &id, under(m, Parent::Latest))
            .await
            .unwrap();
    }
    (alice, owner, id)
}

/// Every message of the session's tree, read page by page.
async fn whole_tree(store: &DynStore, owner: &Owner, id: &SessionId) -> Vec<ChatMessage> {
    super::trees::whole_tree(store, owner, id).await.0
}

/// Checks that the session reads as a tree whose current branch is a path
/// from a first message, and returns the parent of every message.
async fn assert_consistent(
    store: &DynStore,
    owner: &Owner,
    id: &SessionId,
) -> HashMap<MessageId, Option<MessageId>> {
    let session = store.get_session(owner, id).await.unwrap().value;
    let tree = whole_tree(store, owner, id).await;
    let parents: HashMap<_, _> = tree
        .iter()
        .map(|m| (m.id.clone(), m.parent_id.clone()))
        .collect();
    assert_eq!(parents.len(), tree.len(), "each message once");
    assert_eq!(session.total_message_count, tree.len() as u64);
    assert_eq!(session.message_count, session.messages.len() as u64);
    for m in &tree {
        if let Some(p) = &m.parent_id {
            assert!(parents.contains_key(p), "{} follows a missing {p}", m.id);
        }
    }
    let mut before: Option<MessageId> = None;
    for m in &session.messages {
        assert_eq!(m.parent_id, before, "the current branch is a path");
        assert_eq!(parents.get(&m.id), Some(&m.parent_id));
        before = Some(m.id.clone());
    }
    parents
}

pub async fn appends_name_their_parent_and_a_linear_session_is_a_chain(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    let s = store.get_session(&owner, &id).await.unwrap().value;
    let parents: Vec<_> = s.messages.iter().map(|m| m.parent_id.clone()).collect();
    assert_eq!(parents, [None, Some(mid("a")), Some(mid("b"))]);
    assert_eq!((s.message_count, s.total_message_count), (3, 3));
    assert!(s.messages.iter().all(|m| m.siblings.is_none()));
    let appended = store
        .append_message(&owner, &id, under("d", Parent::Message(mid("c"))))
        .await
        .unwrap();
    assert_eq!(appended.message.parent_id, Some(mid("c")));
    assert_consistent(&store, &owner, &id).await;
}

pub async fn a_fork_becomes_the_current_branch_and_keeps_the_old_one(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    let appended = store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    assert!(appended.created);
    assert_eq!(appended.message.parent_id, Some(mid("a")));
    let s = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(s.etag, appended.etag);
    let s = s.value;
    assert_eq!(ids(&s.messages), ["a", "b2"]);
    assert_eq!((s.message_count, s.total_message_count), (2, 4));
    assert_eq!(s.last_message_at, Some(appended.message.created_at));
    assert_eq!(s.messages[0].siblings, None);
    assert_eq!(s.messages[1].siblings, Some(vec![mid("b"), mid("b2")]));
    // The old branch is still there, read without switching.
    let old = store.read_branch(&owner, &id, &mid("b")).await.unwrap();
    assert_eq!(ids(&old.value.messages), ["a", "b", "c"]);
    assert_eq!(old.value.message_count, 3);
    assert_eq!(
        old.value.messages[1].siblings,
        Some(vec![mid("b"), mid("b2")])
    );
    assert_eq!(old.value.messages[2].parent_id, Some(mid("b")));
    let still = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(ids(&still.messages), ["a", "b2"]);
    // Appending goes on after the new branch.
    let next = store
        .append_message(&owner, &id, under("c2", Parent::Latest))
        .await
        .unwrap();
    assert_eq!(next.message.parent_id, Some(mid("b2")));
    assert_consistent(&store, &owner, &id).await;
}

pub async fn a_new_first_message_forks_at_the_root(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    let appended = store
        .append_message(&owner, &id, under("a2", Parent::Root))
        .await
        .unwrap();
    assert_eq!(appended.message.parent_id, None);
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(ids(&s.messages), ["a2"]);
    assert_eq!(s.messages[0].siblings, Some(vec![mid("a"), mid("a2")]));
    assert_eq!(s.total_message_count, 4);
    assert_consistent(&store, &owner, &id).await;
}

pub async fn an_unknown_parent_is_refused_and_changes_nothing(store: DynStore) {
    let (alice, owner, id) = abc(&store).await;
    let other = created(&store, Some(&alice)).await;
    store
        .append_message(&owner, &other, under("elsewhere", Parent::Latest))
        .await
        .unwrap();
    let before = store.get_session(&owner, &id).await.unwrap();
    for parent in ["nope", "elsewhere"] {
        let result = store
            .append_message(&owner, &id, under("x", Parent::Message(mid(parent))))
            .await;
        match result {
            Err(StoreError::Invalid(e)) => assert_eq!(e.field, "parent_id"),
            other => panic!("{parent}: {other:?}"),
        }
    }
    assert_eq!(store.get_session(&owner, &id).await.unwrap(), before);
}

pub async fn a_retried_fork_is_stored_once(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    let first = store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    let again = store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.message, first.message);
    // The same id under another parent is another message: refused.
    let moved = store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("b"))))
        .await;
    assert!(matches!(moved, Err(StoreError::Conflict(_))), "{moved:?}");
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.total_message_count, 4);
}

pub async fn switching_shows_the_newest_leaf_under_a_message(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    for (m, parent) in [("b2", "a"), ("c2", "b2")] {
        store
            .append_message(&owner, &id, under(m, Parent::Message(mid(parent))))
            .await
            .unwrap();
    }
    let before = store.get_session(&owner, &id).await.unwrap();
    let switched = store
        .switch_branch(&owner, &id, &mid("b"), Some(&before.etag))
        .await
        .unwrap();
    assert_eq!(ids(&switched.value.messages), ["a", "b", "c"]);
    assert_ne!(switched.etag, before.etag);
    let read = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(read.etag, switched.etag);
    assert_eq!(read.value.messages, switched.value.messages);
    assert_eq!(
        (read.value.message_count, read.value.total_message_count),
        (3, 5)
    );
    assert_eq!(
        read.value.last_message_at,
        read.value.messages.last().map(|m| m.created_at)
    );
    // Through `a`: its most recent child, then that one's.
    let via_root = store
        .switch_branch(&owner, &id, &mid("a"), None)
        .await
        .unwrap();
    assert_eq!(ids(&via_root.value.messages), ["a", "b2", "c2"]);
    // A stale version and an unknown message change nothing.
    let stale = store
        .switch_branch(&owner, &id, &mid("c"), Some(&before.etag))
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed)),
        "{stale:?}"
    );
    match store.switch_branch(&owner, &id, &mid("zz"), None).await {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "current_message_id"),
        other => panic!("{other:?}"),
    }
    let after = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(after.etag, via_root.etag);
    assert_eq!(ids(&after.value.messages), ["a", "b2", "c2"]);
    // Appending after a switch continues the branch shown.
    store
        .switch_branch(&owner, &id, &mid("c"), None)
        .await
        .unwrap();
    let d = store
        .append_message(&owner, &id, under("d", Parent::Latest))
        .await
        .unwrap();
    assert_eq!(d.message.parent_id, Some(mid("c")));
    assert_consistent(&store, &owner, &id).await;
}

pub async fn branch_operations_need_the_owner(store: DynStore) {
    let (_, _, id) = abc(&store).await;
    let mallory = Owner::User(user(&unique("mallory")));
    assert_not_found(store.read_branch(&mallory, &id, &mid("b")).await.map(drop));
    assert_not_found(
        store
            .switch_branch(&mallory, &id, &mid("b"), None)
            .await
            .map(drop),
    );
    let tree = TreeQuery {
        limit: 10,
        after: 0,
    };
    assert_not_found(store.list_tree(&mallory, &id, tree).await.map(drop));
    let edit = MessageEdit {
        content: Some("mine now".into()),
        metadata: None,
    };
    assert_not_found(
        store
            .edit_message(&mallory, &id, &mid("b"), &edit, None)
            .await
            .map(drop),
    );
    let b = mid("b");
    let delete = store.delete_message(&mallory, &id, &b, DeleteScope::Message, None);
    assert_not_found(delete.await.map(drop));
    let fork = store.append_message(&mallory, &id, under("x", Parent::Message(mid("a"))));
    assert_not_found(fork.await.map(drop));
}

pub async fn the_tree_lists_every_message_with_its_parent_in_pages(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    store
        .append_message(&owner, &id, under("a2", Parent::Root))
        .await
        .unwrap();
    let all = whole_tree(&store, &owner, &id).await;
    assert_eq!(ids(&all), ["a", "b", "c", "b2", "a2"], "creation order");
    let parents: Vec<_> = all.iter().map(|m| m.parent_id.clone()).collect();
    assert_eq!(
        parents,
        [None, Some(mid("a")), Some(mid("b")), Some(mid("a")), None]
    );
    let first = store
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
    assert_eq!(first.current_message_id, Some(mid("a2")));
    assert_eq!(first.next_after, None);
    assert_eq!(
        first.etag,
        store.get_session(&owner, &id).await.unwrap().etag
    );
}

pub async fn an_edit_changes_one_message_in_place(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    let before = store.get_session(&owner, &id).await.unwrap();
    let mut metadata = JsonObject::new();
    metadata.insert("redacted".into(), json!(true));
    let edit = MessageEdit {
        content: Some("my p****** was here".into()),
        metadata: Some(metadata.clone()),
    };
    // A message off the current branch can be edited too.
    let edited = store
        .edit_message(&owner, &id, &mid("b"), &edit, Some(&before.etag))
        .await
        .unwrap();
    assert_ne!(edited.etag, before.etag);
    assert_eq!(edited.value.content, "my p****** was here");
    assert_eq!(edited.value.metadata, metadata);
    assert!(edited.value.edited_at.is_some());
    assert_eq!(edited.value.parent_id, Some(mid("a")));
    let old = store
        .read_branch(&owner, &id, &mid("b"))
        .await
        .unwrap()
        .value;
    assert_eq!(old.messages[1].content, "my p****** was here");
    assert_eq!(old.messages[1].edited_at, edited.value.edited_at);
    let after = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(after.etag, edited.etag);
    assert_eq!(ids(&after.value.messages), ["a", "b2"], "no branch moves");
    // A stale version, a blank content, an unknown message: nothing changes.
    let stale = store
        .edit_message(&owner, &id, &mid("a"), &edit, Some(&before.etag))
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed)),
        "{stale:?}"
    );
    let blank = MessageEdit {
        content: Some("  ".into()),
        metadata: None,
    };
    let refused = store
        .edit_message(&owner, &id, &mid("a"), &blank, None)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    let unknown = store
        .edit_message(&owner, &id, &mid("zz"), &edit, None)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::MessageNotFound)),
        "{unknown:?}"
    );
    assert_eq!(store.get_session(&owner, &id).await.unwrap(), after);
}

pub async fn deleting_a_message_reattaches_its_children(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    store
        .append_message(&owner, &id, under("c2", Parent::Message(mid("b"))))
        .await
        .unwrap();
    // a - b - c
    //       \ c2 (current)
    let before = store.get_session(&owner, &id).await.unwrap();
    let etag = store
        .delete_message(
            &owner,
            &id,
            &mid("b"),
            DeleteScope::Message,
            Some(&before.etag),
        )
        .await
        .unwrap();
    let s = store.get_session(&owner, &id).await.unwrap();
    assert_eq!(s.etag, etag);
    assert_eq!(ids(&s.value.messages), ["a", "c2"]);
    assert_eq!(s.value.messages[1].parent_id, Some(mid("a")));
    assert_eq!(
        s.value.messages[1].siblings,
        Some(vec![mid("c"), mid("c2")])
    );
    assert_eq!((s.value.message_count, s.value.total_message_count), (2, 3));
    let parents = assert_consistent(&store, &owner, &id).await;
    assert_eq!(parents[&mid("c")], Some(mid("a")));
    // A stale version or an unknown message: nothing changes.
    let stale = store
        .delete_message(
            &owner,
            &id,
            &mid("a"),
            DeleteScope::Message,
            Some(&before.etag),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed)),
        "{stale:?}"
    );
    let unknown = store
        .delete_message(&owner, &id, &mid("b"), DeleteScope::Message, None)
        .await;
    assert!(
        matches!(unknown, Err(StoreError::MessageNotFound)),
        "{unknown:?}"
    );
    assert_eq!(store.get_session(&owner, &id).await.unwrap(), s);
}

pub async fn deleting_the_last_message_ends_the_branch_at_its_parent(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    store
        .delete_message(&owner, &id, &mid("c"), DeleteScope::Message, None)
        .await
        .unwrap();
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(ids(&s.messages), ["a", "b"]);
    assert_eq!(s.last_message_at, Some(s.messages[1].created_at));
    let next = store
        .append_message(&owner, &id, under("c3", Parent::Latest))
        .await
        .unwrap();
    assert_eq!(next.message.parent_id, Some(mid("b")));
    // Down to nothing.
    for m in ["c3", "b", "a"] {
        store
            .delete_message(&owner, &id, &mid(m), DeleteScope::Message, None)
            .await
            .unwrap();
    }
    let empty = store.get_session(&owner, &id).await.unwrap().value;
    assert!(empty.messages.is_empty());
    assert_eq!((empty.message_count, empty.total_message_count), (0, 0));
    assert_eq!(empty.last_message_at, None);
}

pub async fn deleting_a_subtree_removes_everything_under_it(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    store
        .append_message(&owner, &id, under("c2", Parent::Message(mid("b"))))
        .await
        .unwrap();
    store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    // a - b - c
    //   |   \ c2
    //   \ b2 (current)
    store
        .switch_branch(&owner, &id, &mid("c"), None)
        .await
        .unwrap();
    store
        .delete_message(&owner, &id, &mid("b"), DeleteScope::Subtree, None)
        .await
        .unwrap();
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(ids(&s.messages), ["a"], "the branch ends at the parent");
    assert_eq!(s.total_message_count, 2);
    let all = whole_tree(&store, &owner, &id).await;
    assert_eq!(ids(&all), ["a", "b2"]);
    assert_consistent(&store, &owner, &id).await;
}

pub async fn reads_that_know_no_branches_read_the_current_one(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    store
        .append_message(&owner, &id, under("b2", Parent::Message(mid("a"))))
        .await
        .unwrap();
    let page = store
        .list_messages(
            &owner,
            &id,
            MessageQuery {
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page.messages), ["b2", "a"]);
    assert_eq!(page.next_before, None);
    let tail = store.get_session_tail(&owner, &id, 1).await.unwrap().value;
    assert_eq!(ids(&tail.messages), ["b2"]);
    assert_eq!((tail.message_count, tail.total_message_count), (2, 4));
    let listed = store
        .list_sessions(
            &owner,
            &chat_sessions::store::ListQuery {
                limit: 10,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    let summary = listed.sessions.iter().find(|s| s.id == id).unwrap();
    assert_eq!((summary.message_count, summary.total_message_count), (2, 4));
}

pub async fn a_fork_deep_in_a_long_session_keeps_every_message(store: DynStore) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = created(&store, Some(&alice)).await;
    let filler = "lorem ipsum dolor sit amet ".repeat(20);
    let mut all = Vec::new();
    for i in 0..200 {
        let mut m = message(Some(&format!("m{i:03}")), &format!("{i} {filler}"));
        m.message_type = if i % 2 == 0 {
            MessageType::User
        } else {
            MessageType::Assistant
        };
        all.push(store.append_message(&owner, &id, m).await.unwrap().message);
    }
    for at in [10usize, 190] {
        let fork = format!("fork_at_{at}");
        store
            .append_message(
                &owner,
                &id,
                under(&fork, Parent::Message(all[at].id.clone())),
            )
            .await
            .unwrap();
        let s = store.get_session(&owner, &id).await.unwrap().value;
        assert_eq!(s.messages.len(), at + 2, "fork at {at}");
        assert!(
            unmarked(&s.messages[..at]) == all[..at],
            "fork at {at}: the path kept"
        );
        assert_eq!(s.messages[at].id, all[at].id);
        assert_eq!(s.messages[at + 1].id, mid(&fork));
        let back = store
            .switch_branch(&owner, &id, &all[199].id, None)
            .await
            .unwrap()
            .value;
        let read = store.get_session(&owner, &id).await.unwrap().value;
        assert!(
            read.messages == back.messages,
            "switch answers what a read reads"
        );
        assert_eq!(ids(&read.messages), ids(&all), "back at {at}");
        let marked: Vec<_> = read
            .messages
            .iter()
            .filter(|m| m.siblings.is_some())
            .collect();
        // Only the children of the fork points, the one just made last.
        assert_eq!(marked.len(), if at == 10 { 1 } else { 2 });
        assert_eq!(marked.last().unwrap().id, all[at + 1].id);
        for (got, want) in read.messages.iter().zip(&all) {
            assert_eq!(got.content, want.content);
            assert_eq!(got.parent_id, want.parent_id);
        }
    }
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!((s.message_count, s.total_message_count), (200, 202));
    assert_consistent(&store, &owner, &id).await;
}

pub async fn concurrent_forks_switches_and_appends_lose_nothing(store: DynStore) {
    let (_, owner, id) = abc(&store).await;
    let mut tasks = Vec::new();
    for writer in 0..6 {
        let (store, owner, id) = (store.clone(), owner.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            // Each message written, with the parent it was appended under.
            let mut mine = Vec::new();
            for step in 0..5 {
                let new = format!("w{writer}_{step}");
                let parent = match (writer + step) % 3 {
                    0 => Parent::Latest,
                    1 => Parent::Message(mid("a")),
                    _ => Parent::Message(mid("b")),
                };
                // A writer may lose a race (a 412 inside a backend's
                // retries surfaces as unavailable): it retries the same
                // message, which is safe.
                let appended = until_through(|| {
                    store.append_message(&owner, &id, under(&new, parent.clone()))
                })
                .await;
                assert_eq!(appended.message.id, mid(&new));
                if let Parent::Message(named) = &parent {
                    assert_eq!(
                        appended.message.parent_id.as_ref(),
                        Some(named),
                        "{new} answered under the parent it named"
                    );
                }
                // Under `Latest`, the parent is whatever the append chose.
                mine.push((mid(&new), appended.message.parent_id));
                if step % 2 == 1 {
                    let c = mid("c");
                    until_through(|| store.switch_branch(&owner, &id, &c, None)).await;
                }
            }
            mine
        }));
    }
    let mut written: Vec<(MessageId, Option<MessageId>)> = vec![
        (mid("a"), None),
        (mid("b"), Some(mid("a"))),
        (mid("c"), Some(mid("b"))),
    ];
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    let parents = assert_consistent(&store, &owner, &id).await;
    let stored: HashSet<MessageId> = parents.keys().cloned().collect();
    let want: HashSet<MessageId> = written.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(want.len(), written.len(), "each write a new message");
    assert_eq!(stored, want, "every message kept, once");
    for (m, parent) in &written {
        assert_eq!(
            &parents[m], parent,
            "{m} under the parent it was appended under"
        );
    }
}
