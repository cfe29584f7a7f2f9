//! The conformance suite on the embedded SQLite store.

use crate::conformance;

use std::sync::Arc;

use chat_sessions::store::{
    DynMigrationStore,
    sqlite::{Durability, SqliteStore},
};

async fn sqlite() -> (DynMigrationStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    (Arc::new(store), dir)
}

conformance_suite!(sqlite());

/// The same suite with `Durability::Full`, whose writes are answered by the
/// thread that flushes the WAL rather than by the writer.
mod full_durability {
    use crate::conformance;

    crate::conformance_suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(dir.path(), super::Durability::Full).unwrap();
        (std::sync::Arc::new(store) as super::DynMigrationStore, dir)
    });
}

mod search {
    crate::search_suite!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(dir.path(), super::Durability::Normal).unwrap();
        (std::sync::Arc::new(store), dir)
    });
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    use chat_sessions::store::{Owner, prelude::*};
    let dir = tempfile::tempdir().unwrap();
    let alice = conformance::user("alice");
    let id = conformance::sid("session_reopen");
    {
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        store
            .create_session(conformance::new_session(&id, Some(&alice)))
            .await
            .unwrap();
        store
            .append_message(
                &Owner::User(alice.clone()),
                &id,
                conformance::message(Some("m1"), "kept"),
            )
            .await
            .unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    let s = store
        .get_session(&Owner::User(alice), &id)
        .await
        .unwrap()
        .value;
    assert_eq!(s.messages[0].content, "kept");
    assert_eq!(s.message_count, 1);
}

/// A file written before `archived_at` existed opens, reads it as null, and
/// archiving works on it.
#[tokio::test]
async fn a_file_from_before_archived_at_is_upgraded_on_open() {
    use chat_sessions::{
        domain::SessionPatch,
        store::{Owner, prelude::*},
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("chat-sessions.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT, session_name TEXT, \
             is_active INTEGER NOT NULL, context TEXT NOT NULL, message_count INTEGER NOT NULL, \
             last_message_at TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, \
             etag TEXT NOT NULL) STRICT;
             INSERT INTO sessions VALUES ('old_one', 'alice', 'Old', 0, '{}', 0, NULL, \
             '2020-01-01T00:00:00.000000Z', '2020-01-02T00:00:00.000000Z', 'e1');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let alice = Owner::User(conformance::user("alice"));
    let id = conformance::sid("old_one");
    let old = store.get_session(&alice, &id).await.unwrap().value;
    assert!(!old.is_active);
    assert_eq!(old.archived_at, None);
    let restore = SessionPatch {
        is_active: Some(true),
        ..SessionPatch::default()
    };
    store
        .update_session(&alice, &id, &restore, None)
        .await
        .unwrap();
    let archive = SessionPatch {
        is_active: Some(false),
        ..SessionPatch::default()
    };
    let archived = store
        .update_session(&alice, &id, &archive, None)
        .await
        .unwrap()
        .value;
    assert!(archived.archived_at.is_some());
    // Opening again changes nothing more.
    drop(store);
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let again = store.get_session(&alice, &id).await.unwrap().value;
    assert_eq!(again.archived_at, archived.archived_at);
}

/// A file from before conversations were trees (no `parent_id`, `pos`,
/// `edited_at` or `total_count`) opens with every message on the current
/// branch, each following the one before it, and can branch at once.
#[tokio::test]
async fn a_file_from_before_trees_reads_as_a_chain_and_can_branch() {
    use chat_sessions::{
        domain::Parent,
        store::{BranchStore as _, Owner, prelude::*, sqlite::DB_FILE},
    };
    let dir = tempfile::tempdir().unwrap();
    let alice = conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let id = conformance::sid("before_trees");
    let before;
    {
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        store
            .create_session(conformance::new_session(&id, Some(&alice)))
            .await
            .unwrap();
        for m in ["a", "b", "c"] {
            store
                .append_message(&owner, &id, conformance::message(Some(m), m))
                .await
                .unwrap();
        }
        before = store.get_session(&owner, &id).await.unwrap().value;
    }
    {
        let conn =
            chat_sessions::store::sqlite::tool_connection(&dir.path().join(DB_FILE)).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        conn.execute_batch(&format!(
            "DROP INDEX messages_by_pos; ALTER TABLE messages DROP COLUMN pos; \
             ALTER TABLE messages DROP COLUMN parent_id; ALTER TABLE messages DROP COLUMN edited_at; \
             ALTER TABLE sessions DROP COLUMN total_count; PRAGMA user_version = {};",
            version - 1
        ))
        .unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let s = store.get_session(&owner, &id).await.unwrap().value;
    let parents: Vec<_> = s.messages.iter().map(|m| m.parent_id.clone()).collect();
    let m = conformance::mid;
    assert_eq!(parents, [None, Some(m("a")), Some(m("b"))]);
    assert_eq!((s.message_count, s.total_message_count), (3, 3));
    // The messages themselves as they were: content, type, owner, time.
    let mut unparented = before.messages.clone();
    for m in &mut unparented {
        m.parent_id = None;
    }
    assert_eq!(s.messages, conformance::chained(&unparented));
    let mut fork = conformance::message(Some("b2"), "again");
    fork.parent = Parent::Message(m("a"));
    store.append_message(&owner, &id, fork).await.unwrap();
    let old = store.read_branch(&owner, &id, &m("c")).await.unwrap().value;
    let parents: Vec<_> = old.messages.iter().map(|m| m.parent_id.clone()).collect();
    assert_eq!(
        parents,
        [None, Some(m("a")), Some(m("b"))],
        "written out as it left"
    );
    // Opening again runs no step twice.
    drop(store);
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let s = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(s.messages.len(), 2);
    assert_eq!(s.total_message_count, 4);
}

/// A file's tree in the database: rows in creation order (a parent before
/// its children, though the file had a child first), the current branch
/// at positions 1…n, every other message at none, each parent written
/// out, and the session's counts.
#[tokio::test]
async fn an_imported_tree_is_stored_parents_first_with_the_branch_positioned() {
    use std::io::Write as _;

    use chat_sessions::store::{ImportStore, Owner};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let session = serde_json::json!({
        "type": "session", "id": "tree", "user_id": "alice", "session_name": "Baum",
        "is_active": true, "archived_at": null, "context": {}, "message_count": 4,
        "last_message_at": null, "created_at": "2024-01-01T00:00:00.000000Z",
        "updated_at": "2024-01-01T00:00:00.000000Z", "current_message_id": "b2",
    });
    let message = |id: &str, parent: Option<&str>, second: u32| {
        serde_json::json!({
            "type": "message", "session_id": "tree", "id": id, "content": id,
            "message_type": "user", "user_id": "alice", "metadata": {},
            "created_at": format!("2024-01-01T00:00:{second:02}.000000Z"), "parent_id": parent,
        })
    };
    let lines = [
        session,
        message("a", None, 1),
        message("c", Some("b"), 3),
        message("b", Some("a"), 2),
        message("b2", Some("a"), 4),
    ];
    let mut file = tempfile::tempfile().unwrap();
    for line in &lines {
        writeln!(file, "{line}").unwrap();
    }
    let importer: &dyn ImportStore = &store;
    let alice = Owner::User(conformance::user("alice"));
    chat_sessions::import::run(importer, &alice, file, &mut |_| {})
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("chat-sessions.sqlite3")).unwrap();
    let rows: Vec<(String, i64, Option<i64>, Option<String>)> = conn
        .prepare(
            "SELECT id, seq, pos, parent_id FROM messages WHERE session_id = 'tree' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let rows: Vec<(&str, i64, Option<i64>, Option<&str>)> = rows
        .iter()
        .map(|(id, seq, pos, parent)| (id.as_str(), *seq, *pos, parent.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("a", 1, Some(1), None),
            ("b", 2, None, Some("a")),
            ("c", 3, None, Some("b")),
            ("b2", 4, Some(2), Some("a")),
        ]
    );
    let counts: (i64, i64, String) = conn
        .query_row(
            "SELECT message_count, total_count, last_message_at FROM sessions WHERE id = 'tree'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(counts, (2, 4, "2024-01-01T00:00:04.000000Z".into()));
}

/// A long session is streamed out in chunks read one after the other; a
/// switch to a branch of the same length in between moves other messages
/// to the positions still to be read. The stream then fails rather than
/// answer the start of one branch and the end of another.
#[tokio::test]
async fn a_streamed_read_that_meets_a_branch_switch_fails_instead_of_mixing_branches() {
    use chat_sessions::{
        domain::{NewMessage, Parent},
        store::{Owner, StoreError, prelude::*},
    };
    use futures::TryStreamExt as _;

    use crate::conformance::mid;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let alice = conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let id = conformance::sid("long");
    store
        .create_session(conformance::new_session(&id, Some(&alice)))
        .await
        .unwrap();
    let say = |text: &str, parent: Parent| NewMessage {
        parent,
        ..conformance::message(Some(text), text)
    };
    // 2,010 messages: the newest 2,000 come with the first read, m1…m10
    // are streamed.
    for i in 1..=2010 {
        let m = format!("m{i}");
        store
            .append_message(&owner, &id, say(&m, Parent::Latest))
            .await
            .unwrap();
    }
    // Another branch from m5, longer than ten messages; then back.
    store
        .append_message(&owner, &id, say("x6", Parent::Message(mid("m5"))))
        .await
        .unwrap();
    for i in 7..=12 {
        let x = format!("x{i}");
        store
            .append_message(&owner, &id, say(&x, Parent::Latest))
            .await
            .unwrap();
    }
    store
        .switch_branch(&owner, &id, &mid("m2010"), None)
        .await
        .unwrap();

    let read = store
        .read_session(&owner, &id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.newest.len(), 2000);
    let older: Vec<_> = read.older.unwrap().try_concat().await.unwrap();
    let expected: Vec<String> = (1..=10).map(|i| format!("m{i}")).collect();
    assert_eq!(
        conformance::ids(&older),
        expected,
        "nothing changed: the whole start"
    );

    let read = store
        .read_session(&owner, &id, None)
        .await
        .unwrap()
        .unwrap();
    store
        .switch_branch(&owner, &id, &mid("x12"), None)
        .await
        .unwrap();
    let mixed = read.older.unwrap().try_concat().await;
    assert!(mixed.is_err(), "a mix of two branches: {mixed:?}");
    match mixed {
        Err(StoreError::Internal(e)) => assert!(
            e.to_string()
                .contains("changed while its messages were being read"),
            "{e:#}"
        ),
        other => panic!("the stream fails as changed underneath: {other:?}"),
    }
}
