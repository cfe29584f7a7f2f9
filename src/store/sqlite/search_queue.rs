//! The search index's changes, queued during a group of writes and applied
//! to FTS5 once, just before the group commits (same transaction, so the
//! index still never disagrees with the data).
//!
//! Why: FTS5 writes its pending data out as a new segment at every
//! savepoint, and SQLite opens a statement savepoint for every statement
//! that fires triggers — each message insert and session update did. With
//! the triggers writing to FTS5 directly, every append wrote (and soon
//! merged) a segment of its own; queued, a group of appends writes one.
//!
//! The triggers below keep `search_entries` in step with the data and
//! queue each change of the FTS5 table as a row of `search_pending`: the
//! document's rowid and its words, or no words for a removal. Files of
//! schema steps 1–3 had triggers writing to FTS5 directly (step 1 made
//! them); this step replaces them.
//! Writers other than the store's (a tool's own connection) leave their
//! changes queued until the store's next write applies them.

use rusqlite::Connection;

/// The schema step: the queue, and the triggers (replacing any older ones).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS search_pending (
    seq   INTEGER PRIMARY KEY,
    doc   INTEGER NOT NULL,
    words TEXT
) STRICT;

DROP TRIGGER IF EXISTS search_message_insert;
DROP TRIGGER IF EXISTS search_message_delete;
DROP TRIGGER IF EXISTS search_message_update;
DROP TRIGGER IF EXISTS search_session_insert;
DROP TRIGGER IF EXISTS search_session_update;
DROP TRIGGER IF EXISTS search_session_owner;
DROP TRIGGER IF EXISTS search_session_delete;

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

CREATE TRIGGER search_message_delete AFTER DELETE ON messages BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries
        WHERE session_id = old.session_id AND message_id = old.id;
    DELETE FROM search_entries WHERE session_id = old.session_id AND message_id = old.id;
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

CREATE TRIGGER search_session_insert AFTER INSERT ON sessions
WHEN new.session_name IS NOT NULL BEGIN
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.updated_at)), new.id, ''
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.updated_at)
                      AND search_bucket(new.updated_at) + 1073741823;
    INSERT INTO search_pending (doc, words)
        VALUES (last_insert_rowid(), search_words(new.user_id, new.session_name));
END;

CREATE TRIGGER search_session_update AFTER UPDATE OF session_name, updated_at, user_id ON sessions
WHEN old.session_name IS NOT new.session_name
  OR old.user_id IS NOT new.user_id
  OR search_bucket(old.updated_at) <> search_bucket(new.updated_at) BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries WHERE session_id = old.id AND message_id = '';
    DELETE FROM search_entries WHERE session_id = old.id AND message_id = '';
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.updated_at)), new.id, ''
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.updated_at)
                      AND search_bucket(new.updated_at) + 1073741823
        HAVING new.session_name IS NOT NULL;
    INSERT INTO search_pending (doc, words)
        SELECT last_insert_rowid(), search_words(new.user_id, new.session_name)
        WHERE new.session_name IS NOT NULL;
END;

-- Messages carry their session's owner word: a new owner re-indexes them.
CREATE TRIGGER search_session_owner AFTER UPDATE OF user_id ON sessions
WHEN old.user_id IS NOT new.user_id BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries WHERE session_id = new.id AND message_id <> '';
    INSERT INTO search_pending (doc, words)
        SELECT e.doc, search_words(new.user_id, m.content)
        FROM search_entries e JOIN messages m ON m.session_id = e.session_id AND m.id = e.message_id
        WHERE e.session_id = new.id;
END;

CREATE TRIGGER search_session_delete AFTER DELETE ON sessions BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries WHERE session_id = old.id;
    DELETE FROM search_entries WHERE session_id = old.id;
END;
"#;

/// The message triggers of [`SCHEMA`] again, indexing a message by its
/// content and its tool calls' function names (`search_message_words` of
/// the `tool` column) rather than its content alone. A step of its own, as
/// it must come after the step that adds the column.
const TOOL_TRIGGERS: &str = r#"
DROP TRIGGER IF EXISTS search_message_insert;
DROP TRIGGER IF EXISTS search_message_update;
DROP TRIGGER IF EXISTS search_session_owner;

CREATE TRIGGER search_message_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.created_at)), new.session_id, new.id
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.created_at)
                      AND search_bucket(new.created_at) + 1073741823;
    INSERT INTO search_pending (doc, words)
        SELECT last_insert_rowid(), search_message_words(s.user_id, new.content, new.tool)
        FROM sessions s WHERE s.id = new.session_id;
END;

CREATE TRIGGER search_message_update
AFTER UPDATE OF session_id, id, content, created_at, tool ON messages
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
        SELECT last_insert_rowid(), search_message_words(s.user_id, new.content, new.tool)
        FROM sessions s WHERE s.id = new.session_id;
END;

-- Messages carry their session's owner word: a new owner re-indexes them.
CREATE TRIGGER search_session_owner AFTER UPDATE OF user_id ON sessions
WHEN old.user_id IS NOT new.user_id BEGIN
    INSERT INTO search_pending (doc, words)
        SELECT doc, NULL FROM search_entries WHERE session_id = new.id AND message_id <> '';
    INSERT INTO search_pending (doc, words)
        SELECT e.doc, search_message_words(new.user_id, m.content, m.tool)
        FROM search_entries e JOIN messages m ON m.session_id = e.session_id AND m.id = e.message_id
        WHERE e.session_id = new.id;
END;
"#;

/// The schema step that makes search find messages by their tool calls'
/// function names: the message triggers swapped for [`TOOL_TRIGGERS`].
/// Nothing is re-indexed, which would read every message of the file: the
/// `tool` column came in the step before, in the same release, so a file
/// reaching this step holds no message with tool calls yet, and the new
/// triggers index every one written from now on. (Only an unreleased build
/// of the step before could have written some; those stay found by their
/// content only.)
pub(super) fn index_tool_calls(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TOOL_TRIGGERS)
}

/// Creates the queue and swaps the triggers (an upgrade step).
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    // Anything a write left for the index before this step is applied.
    apply(conn)
}

/// The schema step that drops step 4's index of the queue by document:
/// keeping it cost every queued change an index entry, while a group's few
/// dozen changes sort faster than that when applied.
pub(super) fn drop_queue_index(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("DROP INDEX IF EXISTS search_pending_by_doc")
}

/// The schema step that turns off FTS5's own merging ("automerge"): it
/// merged at the flush of every 64th leaf, 64 leaves per level of the index
/// at once, and a level reaching 16 segments between those was merged
/// whole ("crisis merge"). Inside one group's commit, either held every
/// write behind it for up to 95 ms under sustained appends. [`apply`]
/// merges a little in every group instead. (Crisis merges stay, as a
/// backstop FTS5 keeps.)
pub(super) fn merge_per_group(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO search_index (search_index, rank) VALUES ('automerge', 0)",
        [],
    )?;
    Ok(())
}

/// Pages of merging a group may do per queued change, and at least: about
/// what FTS5's own merging did on average (a page per level of the index
/// per leaf written, and a change writes well under a leaf), in steps small
/// enough not to hold a group up.
const MERGE_PAGES_PER_CHANGE: i64 = 2;
const MERGE_PAGES_MIN: i64 = 32;

/// Applies the queued changes to FTS5 and empties the queue. Run by the
/// writer inside each group's transaction, just before it commits.
///
/// In two statements, not one per change: FTS5 flushes at the savepoint
/// each statement opens. A document's first queued change says whether it
/// was indexed before the group (a removal comes only for an indexed
/// one), its last what it must be after: the first statement removes every
/// document that was indexed and changed, the second indexes the last
/// words of every document whose last change is not a removal. (With one
/// `MIN` or `MAX` in a grouped query, SQLite takes the other columns from
/// the row holding that minimum or maximum.)
pub(super) fn apply(conn: &Connection) -> rusqlite::Result<()> {
    let queued: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM search_pending")?
        .query_row([], |row| row.get(0))?;
    if queued == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "DELETE FROM search_index WHERE rowid IN \
         (SELECT doc FROM (SELECT doc, words, MIN(seq) FROM search_pending GROUP BY doc) \
          WHERE words IS NULL)",
    )?
    .execute([])?;
    conn.prepare_cached(
        "INSERT INTO search_index (rowid, words) \
         SELECT doc, words FROM (SELECT doc, words, MAX(seq) FROM search_pending GROUP BY doc) \
         WHERE words IS NOT NULL ORDER BY doc",
    )?
    .execute([])?;
    conn.prepare_cached("DELETE FROM search_pending")?
        .execute([])?;
    // FTS5 merges levels of 4 segments or more (its `usermerge`), and
    // stops when none is left, so the budget is a bound, not a cost.
    let pages = (queued * MERGE_PAGES_PER_CHANGE).max(MERGE_PAGES_MIN);
    conn.prepare_cached("INSERT INTO search_index (search_index, rank) VALUES ('merge', ?1)")?
        .execute([pages])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Durability, SCHEMA_VERSION, SqliteStore, search_index::owner_key};
    use crate::{
        domain::{
            JsonObject, MessageId, MessageType, NewMessage, NewSession, SessionId, SessionPatch,
            Timestamp, UserId,
        },
        store::{Owner, prelude::*},
    };

    fn session(id: &str, name: &str) -> NewSession {
        NewSession::new(
            Some(SessionId::parse(id).unwrap()),
            Some(UserId::parse("u").unwrap()),
            Some(name.into()),
            JsonObject::new(),
            Timestamp::now(),
        )
        .unwrap()
    }

    fn message(id: &str, content: &str) -> NewMessage {
        let id = Some(MessageId::parse(id).unwrap());
        NewMessage::new(
            id,
            content.into(),
            MessageType::User,
            None,
            JsonObject::new(),
        )
        .unwrap()
    }

    fn rename(name: &str) -> SessionPatch {
        SessionPatch {
            session_name: Some(Some(name.into())),
            is_active: None,
            context: None,
        }
    }

    /// Documents of owner `u` holding `word`, and what is still queued.
    fn indexed(store: &SqliteStore, word: &str) -> (i64, i64) {
        let conn = rusqlite::Connection::open(&store.inner.path).unwrap();
        let token = format!("\"{}{word}\"", owner_key(Some("u")));
        let hits = conn
            .query_row(
                "SELECT COUNT(*) FROM search_index WHERE search_index MATCH ?1",
                [token],
                |r| r.get(0),
            )
            .unwrap();
        let queued = conn
            .query_row("SELECT COUNT(*) FROM search_pending", [], |r| r.get(0))
            .unwrap();
        (hits, queued)
    }

    /// A file of step 4 loses the queue's index by document on open, and
    /// its index still follows appends.
    #[tokio::test]
    async fn step_5_drops_the_queue_index_of_step_4() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        store.create_session(session("s1", "alpha")).await.unwrap();
        let path = store.inner.path.clone();
        drop(store);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE INDEX search_pending_by_doc ON search_pending (doc, seq); \
             PRAGMA user_version = 4;",
        )
        .unwrap();
        drop(conn);

        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        let owner = Owner::User(UserId::parse("u").unwrap());
        let s1 = SessionId::parse("s1").unwrap();
        store
            .append_message(&owner, &s1, message("m1", "otter"))
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(&store.inner.path).unwrap();
        let (version, indexes): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version), \
                 (SELECT COUNT(*) FROM sqlite_schema WHERE name = 'search_pending_by_doc')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((version, indexes), (SCHEMA_VERSION, 0));
        assert_eq!(indexed(&store, "otter"), (1, 0));
        assert_eq!(indexed(&store, "alpha"), (1, 0));
    }

    /// Several changes to the same documents inside one group (the writer
    /// held while they queue) end as the last of them says: renamed twice,
    /// created and deleted, deleted with its messages, appended.
    #[tokio::test]
    async fn one_group_of_changes_leaves_the_index_as_its_last_changes_say() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        let owner = Owner::User(UserId::parse("u").unwrap());
        let (s1, s2, s3) = (
            SessionId::parse("s1").unwrap(),
            SessionId::parse("s2").unwrap(),
            SessionId::parse("s3").unwrap(),
        );
        store.create_session(session("s1", "alpha")).await.unwrap();
        store.create_session(session("s2", "bravo")).await.unwrap();
        store
            .append_message(&owner, &s2, message("n1", "narwhal"))
            .await
            .unwrap();
        assert_eq!(indexed(&store, "alpha"), (1, 0));
        assert_eq!(indexed(&store, "narwhal"), (1, 0));

        let hold = store.hold_writer().await;
        let (beta, gamma) = (rename("beta"), rename("gamma"));
        let (a, b, c, d, e, f, g) = tokio::join!(
            store.update_session(&owner, &s1, &beta, None),
            store.update_session(&owner, &s1, &gamma, None),
            store.append_message(&owner, &s1, message("m1", "otter")),
            store.create_session(session("s3", "delta")),
            store.delete_session(&owner, &s3, None),
            store.delete_session(&owner, &s2, None),
            store.append_message(&owner, &s1, message("m2", "walrus")),
        );
        hold.await.unwrap().unwrap();
        a.unwrap();
        b.unwrap();
        c.unwrap();
        d.unwrap();
        e.unwrap();
        f.unwrap();
        g.unwrap();
        for (word, hits) in [
            ("alpha", 0),
            ("beta", 0),
            ("gamma", 1),
            ("otter", 1),
            ("walrus", 1),
            ("delta", 0),
            ("bravo", 0),
            ("narwhal", 0),
        ] {
            assert_eq!(indexed(&store, word), (hits, 0), "{word}");
        }
    }

    /// Segments on the index's first level, read from FTS5's structure
    /// record (row 10 of its data table): a 4-byte cookie, the 4-byte mark
    /// of its second format, the level count, the segment count, the write
    /// counter, then per level its merge state and segment count.
    fn first_level_segments(conn: &rusqlite::Connection) -> u64 {
        let record: Vec<u8> = conn
            .query_row(
                "SELECT block FROM search_index_data WHERE id = 10",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut at = if record[4..8] == [0xff, 0, 0, 1] {
            8
        } else {
            4
        };
        let mut varint = || {
            // SQLite's varint: 7 bits a byte, high bit set on all but the last.
            let mut value = 0u64;
            loop {
                let byte = record[at];
                at += 1;
                value = (value << 7) | u64::from(byte & 0x7f);
                if byte & 0x80 == 0 {
                    return value;
                }
            }
        };
        let (_levels, _segments, _writes, _merging) = (varint(), varint(), varint(), varint());
        varint()
    }

    /// Every group merges a little: the first level never holds more than
    /// FTS5's merge threshold (4) plus the group's own new segment, where
    /// its own merging let 16 pile up before merging them at once.
    #[tokio::test]
    async fn each_group_merges_so_segments_never_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
        store.create_session(session("s1", "alpha")).await.unwrap();
        let owner = Owner::User(UserId::parse("u").unwrap());
        let s1 = SessionId::parse("s1").unwrap();
        let conn = rusqlite::Connection::open(&store.inner.path).unwrap();
        let automerge: i64 = conn
            .query_row(
                "SELECT v FROM search_index_config WHERE k = 'automerge'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(automerge, 0);
        let mut most = 0;
        for i in 0..120 {
            // Each append is its own group: one new segment each.
            store
                .append_message(
                    &owner,
                    &s1,
                    message(&format!("m{i}"), &format!("word{i} otter")),
                )
                .await
                .unwrap();
            most = most.max(first_level_segments(&conn));
        }
        assert!(
            (2..=5).contains(&most),
            "{most} segments on the first level"
        );
        assert_eq!(indexed(&store, "otter"), (120, 0));
        assert_eq!(indexed(&store, "word77"), (1, 0));
    }
}
