//! Database files made by earlier versions get the current search index on
//! first start (schema version steps), and search finds what they held.

use chat_sessions::{
    search::index_text,
    store::{
        Owner,
        prelude::*,
        sqlite::{DB_FILE, Durability, SCHEMA_VERSION, SqliteStore, register_functions},
    },
};

use crate::conformance::search::search_all;

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DB_FILE)).unwrap()
}

/// A database file made before search existed gets its index on first
/// start, and search finds what was already there.
#[tokio::test]
async fn an_older_file_is_indexed_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let alice = crate::conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let id = crate::conformance::sid("session_before_search");
    {
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        store
            .create_session(crate::conformance::new_session(&id, Some(&alice)))
            .await
            .unwrap();
        store
            .append_message(
                &owner,
                &id,
                crate::conformance::message(Some("m1"), "old otter"),
            )
            .await
            .unwrap();
    }
    // Make the file what an earlier version left: no index, version 0.
    {
        let conn = rusqlite_open(dir.path());
        conn.execute_batch(
            "DROP TRIGGER search_message_insert; DROP TRIGGER search_message_delete; \
             DROP TRIGGER search_message_update; DROP TRIGGER search_session_insert; \
             DROP TRIGGER search_session_update; DROP TRIGGER search_session_owner; \
             DROP TRIGGER search_session_delete; DROP TABLE search_index; \
             DROP TABLE search_entries; PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    let hits = search_all(&store, &owner, "otter", 10).await;
    assert_eq!(hits.len(), 1);
    let names = search_all(&store, &owner, "shopping", 10).await;
    assert_eq!(names.len(), 1, "the session's name is indexed too");
    // And it stays in step afterwards.
    store
        .append_message(
            &owner,
            &id,
            crate::conformance::message(Some("m2"), "new otter"),
        )
        .await
        .unwrap();
    assert_eq!(search_all(&store, &owner, "otter", 10).await.len(), 2);
    drop(store);
    // Opening again runs no step twice.
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    assert_eq!(search_all(&store, &owner, "otter", 10).await.len(), 2);
}

/// A file indexed in the first format (one owner word ANDed with words
/// shared by all owners, prefix indexes of 1–3 characters), as versions 1
/// and 2 left it, is re-indexed on first start: search, which reads only
/// the current format, finds its messages and names, and the index stays
/// in step afterwards.
#[tokio::test]
async fn a_file_with_the_first_index_format_is_reindexed_on_first_start() {
    for version in [1, 2] {
        reindexed_from(version).await;
    }
}

async fn reindexed_from(version: i64) {
    let dir = tempfile::tempdir().unwrap();
    let alice = crate::conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let bob = crate::conformance::user("bob");
    let id = crate::conformance::sid("session_first_format");
    let other = crate::conformance::sid("session_of_bob");
    {
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        for (id, user, text) in [
            (&id, &alice, "Kubernetes otters"),
            (&other, &bob, "otters too"),
        ] {
            store
                .create_session(crate::conformance::new_session(id, Some(user)))
                .await
                .unwrap();
            store
                .append_message(
                    &Owner::User(user.clone()),
                    id,
                    crate::conformance::message(Some("m1"), text),
                )
                .await
                .unwrap();
        }
    }
    // Write the index as the first format did, and mark the file's version.
    {
        let conn = rusqlite_open(dir.path());
        let owner_word = |user: &str| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in user.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            format!("§{hash:016x}")
        };
        let docs: Vec<(i64, String, String)> = conn
            .prepare(
                "SELECT e.doc, s.user_id, CASE WHEN e.message_id = '' THEN s.session_name \
                 ELSE (SELECT content FROM messages m \
                       WHERE m.session_id = e.session_id AND m.id = e.message_id) END \
                 FROM search_entries e JOIN sessions s ON s.id = e.session_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs.len(), 4, "two messages and two names");
        conn.execute_batch(
            "DROP TABLE search_index; \
             CREATE VIRTUAL TABLE search_index USING fts5(words, content = '', \
                 contentless_delete = 1, detail = 'none', tokenize = 'ascii', prefix = '1 2 3'); \
             ",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
        for (doc, user, text) in docs {
            conn.execute(
                "INSERT INTO search_index (rowid, words) VALUES (?1, ?2)",
                rusqlite::params![doc, format!("{} {}", owner_word(&user), index_text(&text))],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    let upgraded: i64 = rusqlite_open(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(upgraded, SCHEMA_VERSION, "from version {version}");
    let hits = search_all(&store, &owner, "KUBE ott", 10).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].session_id, id);
    assert_eq!(
        search_all(&store, &owner, "otters", 10).await.len(),
        1,
        "bob's stays bob's"
    );
    assert_eq!(
        search_all(&store, &owner, "shop", 10).await.len(),
        1,
        "the name"
    );
    assert_eq!(
        search_all(&store, &Owner::User(bob), "otters", 10)
            .await
            .len(),
        1
    );
    store
        .append_message(
            &owner,
            &id,
            crate::conformance::message(Some("m2"), "more otters"),
        )
        .await
        .unwrap();
    assert_eq!(search_all(&store, &owner, "otters", 10).await.len(), 2);
}

/// The message triggers as schema versions 4 to 7 had them: a message's
/// words are its content's.
const CONTENT_ONLY_TRIGGERS: &str = r#"
DROP TRIGGER search_message_insert;
DROP TRIGGER search_message_update;
DROP TRIGGER search_session_owner;
CREATE TRIGGER search_message_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.created_at)), new.session_id, new.id
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.created_at)
                      AND search_bucket(new.created_at) + 1073741823;
    INSERT INTO search_pending (doc, words)
        SELECT last_insert_rowid(), search_words(s.user_id, new.content)
        FROM sessions s WHERE s.id = new.session_id;
END;
CREATE TRIGGER search_message_update AFTER UPDATE OF session_id, id, content, created_at ON messages
BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries
        WHERE session_id = old.session_id AND message_id = old.id;
    DELETE FROM search_entries WHERE session_id = old.session_id AND message_id = old.id;
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.created_at)), new.session_id, new.id
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.created_at)
                      AND search_bucket(new.created_at) + 1073741823;
    INSERT INTO search_pending (doc, words)
        SELECT last_insert_rowid(), search_words(s.user_id, new.content)
        FROM sessions s WHERE s.id = new.session_id;
END;
CREATE TRIGGER search_session_owner AFTER UPDATE OF user_id ON sessions
WHEN old.user_id IS NOT new.user_id BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries WHERE session_id = new.id AND message_id <> '';
    INSERT INTO search_pending (doc, words)
        SELECT e.doc, search_words(new.user_id, m.content)
        FROM search_entries e JOIN messages m ON m.session_id = e.session_id AND m.id = e.message_id
        WHERE e.session_id = new.id;
END;
"#;

/// A file from before tool calls were searched — version 6, without the
/// `tool` column, or version 7, with it — opens, searches what it held,
/// and from then on finds messages by their tool calls' function names;
/// its sessions' owner changing re-indexes them with the names.
#[tokio::test]
async fn a_file_from_before_function_names_were_searched_finds_them_after_upgrade() {
    for version in [6, 7] {
        function_names_searched_after_upgrade_from(version).await;
    }
}

async fn function_names_searched_after_upgrade_from(version: i64) {
    let dir = tempfile::tempdir().unwrap();
    let alice = crate::conformance::user("alice");
    let owner = Owner::User(alice.clone());
    let id = crate::conformance::sid("session_before_tools");
    {
        let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
        store
            .create_session(crate::conformance::new_session(&id, Some(&alice)))
            .await
            .unwrap();
        store
            .append_message(
                &owner,
                &id,
                crate::conformance::message(Some("m1"), "old otter"),
            )
            .await
            .unwrap();
    }
    // Make the file what the version left: content-only message triggers,
    // and before version 7 no `tool` column.
    {
        let conn = rusqlite_open(dir.path());
        conn.execute_batch(CONTENT_ONLY_TRIGGERS).unwrap();
        if version < 7 {
            conn.execute_batch("ALTER TABLE messages DROP COLUMN tool")
                .unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
    }
    let store = SqliteStore::open(dir.path(), Durability::Full).unwrap();
    let upgraded: i64 = rusqlite_open(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(upgraded, SCHEMA_VERSION, "from version {version}");
    assert_eq!(search_all(&store, &owner, "otter", 10).await.len(), 1);
    store
        .append_message(
            &owner,
            &id,
            crate::conformance::tools::calling("m2", "call_1"),
        )
        .await
        .unwrap();
    let hits = search_all(&store, &owner, "weather", 10).await;
    assert_eq!(hits.len(), 1, "from version {version}");
    assert_eq!(hits[0].snippet, "get_weather");

    // A new owner (as a tool's own connection may set) re-indexes the
    // session's messages, names included, under the new owner's key.
    let bob = crate::conformance::user("bob");
    {
        let conn = rusqlite_open(dir.path());
        register_functions(&conn).unwrap();
        conn.execute(
            "UPDATE sessions SET user_id = ?1 WHERE id = ?2",
            [bob.as_str(), id.as_str()],
        )
        .unwrap();
    }
    // The store's next write applies what that connection queued.
    store
        .create_session(crate::conformance::new_session(
            &crate::conformance::sid("session_after_owner_change"),
            Some(&alice),
        ))
        .await
        .unwrap();
    let bobs = Owner::User(bob);
    assert_eq!(search_all(&store, &bobs, "weather", 10).await.len(), 1);
    assert_eq!(search_all(&store, &bobs, "otter", 10).await.len(), 1);
    assert!(search_all(&store, &owner, "weather", 10).await.is_empty());
}
