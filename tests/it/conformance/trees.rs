//! Conversation trees through export and import: every branch exported
//! with its parents and the end of the current branch, a file's tree
//! restored by an import (a new session, and one that exists), messages
//! stored before trees reading as a chain, and an export imported by
//! another user as a copy of their own.

use std::io::Write as _;

use chat_sessions::{
    domain::{ChatMessage, MessageId, MessageType, Parent, SessionId, SessionSummary, Timestamp},
    export::{write_message_line, write_session_line},
    import,
    store::{
        DynMigrationStore, DynStore, ExportItem, ImportOutcome, ImportStore, Owner, SessionFields,
        SessionImport, StoreError, TreeQuery, export::export,
    },
};
use futures::TryStreamExt as _;
use serde_json::json;

use super::{assert_not_found, chained, created, message, mid, sid, unique, user};

/// Each message's id and parent, in order.
fn shape(messages: &[ChatMessage]) -> Vec<(&str, Option<&str>)> {
    messages
        .iter()
        .map(|m| (m.id.as_str(), m.parent_id.as_ref().map(MessageId::as_str)))
        .collect()
}

/// Appends `id` to session `session` of `owner` under `parent`.
async fn append(store: &DynStore, owner: &Owner, session: &SessionId, id: &str, parent: Parent) {
    let mut new = message(Some(id), &format!("Text of {id} · ünïcødé"));
    new.parent = parent;
    store.append_message(owner, session, new).await.unwrap();
}

/// Every message of session `id` (all branches, creation order), and the
/// end of its current branch, read a page at a time.
pub(super) async fn whole_tree(
    store: &DynStore,
    owner: &Owner,
    id: &SessionId,
) -> (Vec<ChatMessage>, Option<MessageId>) {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .list_tree(owner, id, TreeQuery { limit: 2, after })
            .await
            .unwrap();
        messages.extend(page.messages);
        match page.next_after {
            Some(next) => after = next,
            None => return (messages, page.current_message_id),
        }
    }
}

/// A session's tree as `export` hands it over.
struct Exported {
    summary: SessionSummary,
    current: Option<MessageId>,
    messages: Vec<ChatMessage>,
}

async fn exported(store: &DynStore, owner: &Owner) -> Vec<Exported> {
    let items: Vec<ExportItem> = export(store.clone(), owner.clone())
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<Exported> = Vec::new();
    for item in items {
        match item {
            ExportItem::Session {
                summary,
                current_message_id,
            } => out.push(Exported {
                summary,
                current: current_message_id,
                messages: Vec::new(),
            }),
            ExportItem::Messages(id, messages) => {
                let last = out.last_mut().expect("messages after their session");
                assert_eq!(last.summary.id, id);
                last.messages.extend(messages);
            }
        }
    }
    out
}

/// A session branched three ways: m1 → m2, m1 → m2b → m3 (current, by a
/// switch back to it), and a second first message r.
async fn branched(store: &DynStore, owner: &Owner) -> SessionId {
    let id = created(store, owner.user_id()).await;
    append(store, owner, &id, "m1", Parent::Latest).await;
    append(store, owner, &id, "m2", Parent::Latest).await;
    append(store, owner, &id, "m2b", Parent::Message(mid("m1"))).await;
    append(store, owner, &id, "m3", Parent::Latest).await;
    append(store, owner, &id, "r", Parent::Root).await;
    store
        .switch_branch(owner, &id, &mid("m3"), None)
        .await
        .unwrap();
    id
}

/// Messages of a file from before trees (no parents), one a second.
fn old_chain(prefix: &str, n: usize) -> Vec<ChatMessage> {
    (0..n)
        .map(|i| ChatMessage {
            id: mid(&format!("{prefix}{i}")),
            content: format!("old {i}"),
            message_type: MessageType::User,
            user_id: None,
            metadata: json!({ "i": i }).as_object().unwrap().clone(),
            created_at: Timestamp::parse(&format!("2023-05-01T00:00:{i:02}Z")).unwrap(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
        })
        .collect()
}

pub async fn export_writes_every_branch_with_parents_and_the_current_one(
    migration: DynMigrationStore,
) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let tree = branched(&store, &alice).await;
    let linear = created(&store, alice.user_id()).await;
    append(&store, &alice, &linear, "l1", Parent::Latest).await;
    append(&store, &alice, &linear, "l2", Parent::Latest).await;
    let old = sid(&unique("old"));
    migration
        .import_messages(SessionImport {
            id: old.clone(),
            user_id: alice.user_id().cloned(),
            messages: old_chain("o", 3),
        })
        .await
        .unwrap();
    let empty = created(&store, alice.user_id()).await;

    let export = exported(&store, &alice).await;
    let of = |id: &SessionId| export.iter().find(|e| e.summary.id == *id).unwrap();
    let t = of(&tree);
    assert_eq!(
        shape(&t.messages),
        [
            ("m1", None),
            ("m2", Some("m1")),
            ("m2b", Some("m1")),
            ("m3", Some("m2b")),
            ("r", None),
        ],
        "every branch, in creation order, with parents"
    );
    assert_eq!(t.current, Some(mid("m3")));
    assert_eq!(
        (t.summary.message_count, t.summary.total_message_count),
        (5, 5),
        "the file counts every message that follows"
    );
    let stored = store.get_session(&alice, &tree).await.unwrap().value;
    assert_eq!(stored.message_count, 3);
    assert_eq!(t.summary.last_message_at, stored.last_message_at);
    let (all, current) = whole_tree(&store, &alice, &tree).await;
    assert_eq!(current, Some(mid("m3")));
    assert_eq!(t.messages, all, "the messages as the tree lists them");

    let l = of(&linear);
    assert_eq!(shape(&l.messages), [("l1", None), ("l2", Some("l1"))]);
    assert_eq!(l.current, Some(mid("l2")));
    // Stored without parents: the export says whom each follows.
    let o = of(&old);
    assert_eq!(
        shape(&o.messages),
        [("o0", None), ("o1", Some("o0")), ("o2", Some("o1"))]
    );
    assert_eq!(o.current, Some(mid("o2")));
    assert_eq!(
        (o.summary.message_count, o.summary.total_message_count),
        (3, 3)
    );
    let e = of(&empty);
    assert_eq!((e.current.as_ref(), e.messages.len()), (None, 0));
}

/// A file's tree for session `id` of `owner`: `edges` (id, parent) in
/// creation order, a second apart.
fn tree_import(id: &SessionId, owner: &Owner, edges: &[(&str, Option<&str>)]) -> SessionImport {
    let messages = edges
        .iter()
        .enumerate()
        .map(|(i, (m, parent))| ChatMessage {
            id: mid(m),
            content: format!("Grüße von {m}"),
            message_type: if i % 2 == 0 {
                MessageType::User
            } else {
                MessageType::Assistant
            },
            user_id: owner.user_id().cloned(),
            metadata: json!({ "n": i }).as_object().unwrap().clone(),
            created_at: Timestamp::parse(&format!("2024-02-01T10:00:{i:02}.5Z")).unwrap(),
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: parent.map(mid),
            edited_at: None,
            siblings: None,
        })
        .collect();
    SessionImport {
        id: id.clone(),
        user_id: owner.user_id().cloned(),
        messages,
    }
}

fn tree_fields(current: &str) -> SessionFields {
    SessionFields {
        current_message_id: Some(mid(current)),
        ..SessionFields::starting_at(Timestamp::parse("2024-02-01T09:00:00Z").unwrap())
    }
}

pub async fn import_session_restores_a_tree_and_its_current_branch(migration: DynMigrationStore) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let id = sid(&unique("s"));
    let edges = [
        ("a", None),
        ("b", Some("a")),
        ("b2", Some("a")),
        ("c2", Some("b2")),
        ("r", None),
    ];
    let mut import = tree_import(&id, &alice, &edges);
    // Edited on one branch and on another: the times come back too.
    import.messages[1].edited_at = Some(Timestamp::parse("2024-02-01T00:00:00Z").unwrap());
    import.messages[3].edited_at = Some(Timestamp::parse("2024-02-02T00:00:00Z").unwrap());
    let outcome = store
        .import_session(tree_fields("c2"), import.clone())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ImportOutcome {
            created: true,
            added: 5,
            already_present: 0
        }
    );
    let session = store.get_session(&alice, &id).await.unwrap().value;
    let on_branch: Vec<ChatMessage> = [0, 2, 3]
        .iter()
        .map(|&i| import.messages[i].clone())
        .collect();
    let mut read = session.messages.clone();
    read.iter_mut().for_each(|m| m.siblings = None);
    assert_eq!(read, on_branch, "the branch to c2, as the file had it");
    assert_eq!((session.message_count, session.total_message_count), (3, 5));
    assert_eq!(session.last_message_at, Some(import.messages[3].created_at));
    let (all, current) = whole_tree(&store, &alice, &id).await;
    assert_eq!(
        all, import.messages,
        "every message, parents and order kept"
    );
    assert_eq!(current, Some(mid("c2")));
    // Again: nothing added, nothing changed.
    let again = store
        .import_session(tree_fields("c2"), import)
        .await
        .unwrap();
    assert_eq!((again.added, again.already_present), (0, 5));
    assert_eq!(store.get_session(&alice, &id).await.unwrap().value, session);
}

pub async fn import_session_of_a_tree_moves_an_existing_branch_only_forward(
    migration: DynMigrationStore,
) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let id = sid(&unique("s"));
    let edges = [
        ("a", None),
        ("b", Some("a")),
        ("c", Some("b")),
        ("d", Some("c")),
        ("x", Some("a")),
    ];
    let file = tree_import(&id, &alice, &edges);
    let part = |n: &[usize]| SessionImport {
        messages: n.iter().map(|&i| file.messages[i].clone()).collect(),
        ..file.clone()
    };
    store
        .import_session(tree_fields("b"), part(&[0, 1]))
        .await
        .unwrap();
    // A file whose branch continues the session's: the branch follows it.
    let more = store
        .import_session(tree_fields("d"), part(&[0, 1, 2, 3]))
        .await
        .unwrap();
    assert_eq!((more.added, more.already_present), (2, 2));
    let session = store.get_session(&alice, &id).await.unwrap().value;
    assert_eq!(
        shape(&session.messages),
        [
            ("a", None),
            ("b", Some("a")),
            ("c", Some("b")),
            ("d", Some("c"))
        ]
    );
    assert_eq!(session.last_message_at, Some(file.messages[3].created_at));
    // One whose branch leaves it: the new messages are kept beside it.
    let other = store
        .import_session(tree_fields("x"), part(&[0, 4]))
        .await
        .unwrap();
    assert_eq!((other.added, other.already_present), (1, 1));
    let after = store.get_session(&alice, &id).await.unwrap().value;
    assert_eq!(
        shape(&after.messages),
        shape(&session.messages),
        "the session's branch stays"
    );
    assert_eq!((after.message_count, after.total_message_count), (4, 5));
    let (all, current) = whole_tree(&store, &alice, &id).await;
    assert_eq!(shape(&all), edges.to_vec());
    assert_eq!(current, Some(mid("d")));
}

/// A conversation imported as a chain before trees (ChatGPT's shown branch,
/// say) imported again as a tree: it gets its other branches, and shows
/// what it showed.
pub async fn a_chain_imported_before_trees_gets_its_other_branches(migration: DynMigrationStore) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let id = sid(&unique("s"));
    let edges = [
        ("a", None),
        ("b", Some("a")),
        ("c", Some("b")),
        ("b2", Some("a")),
    ];
    let file = tree_import(&id, &alice, &edges);
    let mut chain = file.clone();
    chain.messages.truncate(3);
    chain.messages.iter_mut().for_each(|m| m.parent_id = None);
    let fields = SessionFields::starting_at(Timestamp::parse("2024-02-01T09:00:00Z").unwrap());
    store.import_session(fields, chain).await.unwrap();
    let outcome = store.import_session(tree_fields("c"), file).await.unwrap();
    assert_eq!((outcome.added, outcome.already_present), (1, 3));
    let session = store.get_session(&alice, &id).await.unwrap().value;
    assert_eq!(
        shape(&session.messages),
        [("a", None), ("b", Some("a")), ("c", Some("b"))]
    );
    assert_eq!((session.message_count, session.total_message_count), (3, 4));
    let (all, current) = whole_tree(&store, &alice, &id).await;
    assert_eq!(shape(&all), edges.to_vec());
    assert_eq!(current, Some(mid("c")));
}

pub async fn import_session_of_a_tree_with_a_stranger_parent_is_refused_and_writes_nothing(
    migration: DynMigrationStore,
) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let id = sid(&unique("s"));
    let stray = tree_import(&id, &alice, &[("a", None), ("b", Some("zz"))]);
    let result = store.import_session(tree_fields("b"), stray).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    let wrong_end = tree_import(&id, &alice, &[("a", None)]);
    let result = store.import_session(tree_fields("zz"), wrong_end).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    let gone = store.get_session(&alice, &id).await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
    // A parent the session holds is one.
    store
        .import_session(tree_fields("a"), tree_import(&id, &alice, &[("a", None)]))
        .await
        .unwrap();
    let mut b = tree_import(&id, &alice, &[("a", None), ("b", Some("a"))]);
    b.messages.remove(0);
    let outcome = store.import_session(tree_fields("b"), b).await.unwrap();
    assert_eq!(outcome.added, 1);
    let session = store.get_session(&alice, &id).await.unwrap().value;
    assert_eq!(shape(&session.messages), [("a", None), ("b", Some("a"))]);
    // Into a session that exists, a stranger parent changes nothing.
    let mut stray = tree_import(&id, &alice, &[("c", Some("b")), ("d", Some("zz"))]);
    stray.messages[0].parent_id = Some(mid("b"));
    let result = store.import_session(tree_fields("d"), stray).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(store.get_session(&alice, &id).await.unwrap().value, session);
}

pub async fn messages_without_parents_read_as_a_chain(migration: DynMigrationStore) {
    let store: DynStore = migration.clone();
    let alice = Owner::User(user(&unique("alice")));
    let chain = [("o0", None), ("o1", Some("o0")), ("o2", Some("o1"))];
    // The migration's messages, and a file's from before trees.
    let migrated = sid(&unique("migrated"));
    migration
        .import_messages(SessionImport {
            id: migrated.clone(),
            user_id: alice.user_id().cloned(),
            messages: old_chain("o", 3),
        })
        .await
        .unwrap();
    let filed = sid(&unique("filed"));
    let fields = SessionFields::starting_at(Timestamp::parse("2023-05-01T00:00:00Z").unwrap());
    store
        .import_session(
            fields,
            SessionImport {
                id: filed.clone(),
                user_id: alice.user_id().cloned(),
                messages: old_chain("o", 3),
            },
        )
        .await
        .unwrap();
    // Read back unchanged but for the parents: content, type, metadata and
    // time as stored.
    let read_as = chained(&old_chain("o", 3));
    for id in [&migrated, &filed] {
        let session = store.get_session(&alice, id).await.unwrap().value;
        assert_eq!(shape(&session.messages), chain, "{id}");
        assert_eq!(session.messages, read_as, "{id}");
        assert_eq!(session.total_message_count, 3);
        let (all, current) = whole_tree(&store, &alice, id).await;
        assert_eq!(shape(&all), chain, "{id}");
        assert_eq!(all, read_as, "{id}");
        assert_eq!(current, Some(mid("o2")));
        append(&store, &alice, id, "next", Parent::Latest).await;
        let session = store.get_session(&alice, id).await.unwrap().value;
        assert_eq!(session.messages[3].parent_id, Some(mid("o2")));
    }
}

/// `owner`'s export as a file.
/// Imports `file` as `owner`: (sessions created, messages added, messages
/// skipped).
async fn counted(
    importer: &dyn ImportStore,
    owner: &Owner,
    file: std::fs::File,
) -> (u64, u64, u64) {
    let report = import::run(importer, owner, file, &mut |_| {})
        .await
        .unwrap();
    (
        report.sessions_created,
        report.messages_added,
        report.messages_skipped,
    )
}

async fn export_file(store: &DynStore, owner: &Owner) -> std::fs::File {
    let mut out = Vec::new();
    for e in exported(store, owner).await {
        write_session_line(&mut out, &e.summary, e.current.as_ref()).unwrap();
        for m in &e.messages {
            write_message_line(&mut out, &e.summary.id, m).unwrap();
        }
    }
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&out).unwrap();
    file
}

pub async fn an_export_imported_by_another_user_is_their_own_copy(migration: DynMigrationStore) {
    let store: DynStore = migration.clone();
    let importer: &dyn ImportStore = migration.as_ref();
    let alice = Owner::User(user(&unique("alice")));
    let bob = Owner::User(user(&unique("bob")));
    let tree = branched(&store, &alice).await;
    let linear = created(&store, alice.user_id()).await;
    append(&store, &alice, &linear, "l1", Parent::Latest).await;
    let before = exported(&store, &alice).await;

    assert_eq!(
        counted(importer, &bob, export_file(&store, &alice).await).await,
        (2, 6, 0)
    );
    let copy = import::copy_id(&bob, &tree);
    let (bobs, current) = whole_tree(&store, &bob, &copy).await;
    let (alices, _) = whole_tree(&store, &alice, &tree).await;
    assert_eq!(shape(&bobs), shape(&alices), "the same tree");
    assert_eq!(current, Some(mid("m3")));
    for (b, a) in bobs.iter().zip(&alices) {
        assert_eq!((&b.content, b.created_at), (&a.content, a.created_at));
        assert_eq!(b.user_id.as_ref(), bob.user_id());
    }
    let copied = store.get_session(&bob, &copy).await.unwrap().value;
    assert_eq!((copied.message_count, copied.total_message_count), (3, 5));
    // Not Alice's.
    assert_not_found(store.get_session(&bob, &tree).await);
    let after = exported(&store, &alice).await;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!((&a.summary, &a.messages), (&b.summary, &b.messages));
    }
    // Bob again: his copies, nothing added. Alice: her own sessions.
    assert_eq!(
        counted(importer, &bob, export_file(&store, &alice).await).await,
        (0, 0, 6)
    );
    assert_eq!(
        counted(importer, &alice, export_file(&store, &alice).await).await,
        (0, 0, 6)
    );
    // Bob's own export imported by Bob: his copies' ids, as they are.
    let (created, added, _) = counted(importer, &bob, export_file(&store, &bob).await).await;
    assert_eq!((created, added), (0, 0));
}
