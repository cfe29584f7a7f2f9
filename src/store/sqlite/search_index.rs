//! The search index of the embedded store: an FTS5 table of words, kept by
//! triggers in the same transaction as every write to `sessions` and
//! `messages` (appends, renames, deletes, imports, whatever code runs
//! them), so it can never disagree with the data.
//!
//! - `search_index` is a contentless FTS5 table (it stores no text, only
//!   the index). Each document is a message, or a session's name, written
//!   as the words [`crate::search::index_text`] sees (folded, one space
//!   between), after an owner word (`§` and a hash of the `user_id`; `§`
//!   is never part of a word) so that a search reads one owner's documents
//!   only. The `ascii` tokenizer then splits exactly at those spaces, and
//!   prefix indexes of 1–3 characters make short prefixes (what a
//!   search-as-you-type box sends first) as quick as whole words.
//! - A document's rowid is its instant's second, shifted left by 30 bits,
//!   plus a free slot: reading the index newest first walks the owner's
//!   hits in time order, so a page stops early. A message's instant is its
//!   `created_at`; a name's is its session's `updated_at` (re-keyed when it
//!   moves to another second).
//! - `search_entries` maps each rowid to its session and message (`''` for
//!   the name), and back.
//!
//! The rules (`search_words`, `search_bucket`) are Rust functions registered
//! on every connection of the store; a connection without them (the
//! `sqlite3` shell) can read the file but not write sessions or messages.

use std::collections::HashMap;

use rusqlite::{Connection, functions::FunctionFlags, params};

use crate::{domain::Timestamp, search::index_text};

/// Bits of a rowid below the second: the slot within it.
pub(super) const SLOT_BITS: u32 = 30;
/// The largest slot.
pub(super) const SLOT_MASK: i64 = (1 << SLOT_BITS) - 1;
/// The largest second a rowid can hold (year 2242); later instants share it.
const MAX_SECOND: i64 = (1 << (63 - SLOT_BITS)) - 1;

/// The schema step that adds the index, with its triggers.
const SCHEMA: &str = r#"
CREATE TABLE search_entries (
    doc        INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    UNIQUE (session_id, message_id)
) STRICT;
CREATE VIRTUAL TABLE search_index USING fts5(
    words,
    content = '',
    contentless_delete = 1,
    detail = 'none',
    tokenize = 'ascii',
    prefix = '1 2 3'
);

CREATE TRIGGER search_message_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.created_at)), new.session_id, new.id
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.created_at)
                      AND search_bucket(new.created_at) + 1073741823;
    INSERT INTO search_index (rowid, words)
        SELECT last_insert_rowid(), search_words(s.user_id, new.content)
        FROM sessions s WHERE s.id = new.session_id;
END;

CREATE TRIGGER search_message_delete AFTER DELETE ON messages BEGIN
    DELETE FROM search_index WHERE rowid =
        (SELECT doc FROM search_entries WHERE session_id = old.session_id AND message_id = old.id);
    DELETE FROM search_entries WHERE session_id = old.session_id AND message_id = old.id;
END;

CREATE TRIGGER search_message_update AFTER UPDATE OF session_id, id, content, created_at ON messages
BEGIN
    DELETE FROM search_index WHERE rowid =
        (SELECT doc FROM search_entries WHERE session_id = old.session_id AND message_id = old.id);
    DELETE FROM search_entries WHERE session_id = old.session_id AND message_id = old.id;
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.created_at)), new.session_id, new.id
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.created_at)
                      AND search_bucket(new.created_at) + 1073741823;
    INSERT INTO search_index (rowid, words)
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
    INSERT INTO search_index (rowid, words)
        VALUES (last_insert_rowid(), search_words(new.user_id, new.session_name));
END;

CREATE TRIGGER search_session_update AFTER UPDATE OF session_name, updated_at, user_id ON sessions
WHEN old.session_name IS NOT new.session_name
  OR old.user_id IS NOT new.user_id
  OR search_bucket(old.updated_at) <> search_bucket(new.updated_at) BEGIN
    DELETE FROM search_index WHERE rowid =
        (SELECT doc FROM search_entries WHERE session_id = old.id AND message_id = '');
    DELETE FROM search_entries WHERE session_id = old.id AND message_id = '';
    INSERT INTO search_entries (doc, session_id, message_id)
        SELECT COALESCE(MAX(doc) + 1, search_bucket(new.updated_at)), new.id, ''
        FROM search_entries
        WHERE doc BETWEEN search_bucket(new.updated_at)
                      AND search_bucket(new.updated_at) + 1073741823
        HAVING new.session_name IS NOT NULL;
    INSERT INTO search_index (rowid, words)
        SELECT last_insert_rowid(), search_words(new.user_id, new.session_name)
        WHERE new.session_name IS NOT NULL;
END;

-- Messages carry their session's owner word: a new owner re-indexes them.
CREATE TRIGGER search_session_owner AFTER UPDATE OF user_id ON sessions
WHEN old.user_id IS NOT new.user_id BEGIN
    DELETE FROM search_index WHERE rowid IN
        (SELECT doc FROM search_entries WHERE session_id = new.id AND message_id <> '');
    INSERT INTO search_index (rowid, words)
        SELECT e.doc, search_words(new.user_id, m.content)
        FROM search_entries e JOIN messages m ON m.session_id = e.session_id AND m.id = e.message_id
        WHERE e.session_id = new.id;
END;

CREATE TRIGGER search_session_delete AFTER DELETE ON sessions BEGIN
    DELETE FROM search_index WHERE rowid IN
        (SELECT doc FROM search_entries WHERE session_id = old.id);
    DELETE FROM search_entries WHERE session_id = old.id;
END;
"#;

/// The owner word of `user_id`: `§` and a 64-bit FNV-1a hash (`§0` for no
/// owner). A collision only adds candidates; the owner is checked again on
/// every hit.
pub(super) fn owner_word(user_id: Option<&str>) -> String {
    match user_id {
        None => "§0".to_owned(),
        Some(user) => {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in user.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            format!("§{hash:016x}")
        }
    }
}

/// The words a document is indexed under.
fn document_words(user_id: Option<&str>, text: &str) -> String {
    let mut words = owner_word(user_id);
    let text = index_text(text);
    if !text.is_empty() {
        words.push(' ');
        words.push_str(&text);
    }
    words
}

/// The second of `at`, clamped to what a rowid holds.
pub(super) fn second_of(at: &Timestamp) -> i64 {
    at.as_datetime().timestamp().clamp(0, MAX_SECOND)
}

/// The first rowid of the second of `at`.
pub(super) fn bucket(at: &Timestamp) -> i64 {
    second_of(at) << SLOT_BITS
}

fn bucket_of_text(text: &str) -> rusqlite::Result<i64> {
    Timestamp::parse(text)
        .map(|at| bucket(&at))
        .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
}

/// Registers `search_words` and `search_bucket` on `conn`.
pub(super) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("search_words", 2, flags, |ctx| {
        let user: Option<String> = ctx.get(0)?;
        let text: String = ctx.get(1)?;
        Ok(document_words(user.as_deref(), &text))
    })?;
    conn.create_scalar_function("search_bucket", 1, flags, |ctx| {
        bucket_of_text(&ctx.get::<String>(0)?)
    })
}

/// The schema step: creates the index and fills it from the data already
/// in the file (a database made before search existed).
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    let mut next_slot: HashMap<i64, i64> = HashMap::new();
    let mut slot = |at: &str| -> rusqlite::Result<i64> {
        let bucket = bucket_of_text(at)?;
        let next = next_slot.entry(bucket).or_insert(bucket);
        *next += 1;
        Ok(*next - 1)
    };
    let mut entry = conn
        .prepare("INSERT INTO search_entries (doc, session_id, message_id) VALUES (?1, ?2, ?3)")?;
    let mut index = conn.prepare("INSERT INTO search_index (rowid, words) VALUES (?1, ?2)")?;
    let mut sessions = conn.prepare(
        "SELECT id, user_id, session_name, updated_at FROM sessions \
         WHERE session_name IS NOT NULL",
    )?;
    let mut rows = sessions.query([])?;
    while let Some(row) = rows.next()? {
        let (id, user, name, at): (String, Option<String>, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let doc = slot(&at)?;
        entry.execute(params![doc, id, ""])?;
        index.execute(params![doc, document_words(user.as_deref(), &name)])?;
    }
    let mut messages = conn.prepare(
        "SELECT m.session_id, m.id, m.content, m.created_at, s.user_id \
         FROM messages m JOIN sessions s ON s.id = m.session_id",
    )?;
    let mut rows = messages.query([])?;
    while let Some(row) = rows.next()? {
        let (session, id, content, at, user): (String, String, String, String, Option<String>) = (
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        );
        let doc = slot(&at)?;
        entry.execute(params![doc, session, id])?;
        index.execute(params![doc, document_words(user.as_deref(), &content)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_words_are_stable_and_never_words_of_text() {
        assert_eq!(owner_word(Some("user_123")), owner_word(Some("user_123")));
        assert_ne!(owner_word(Some("user_123")), owner_word(Some("user_124")));
        assert_eq!(owner_word(None), "§0");
        assert!(!index_text("§0 §abc").contains('§'));
    }

    #[test]
    fn buckets_follow_seconds_and_clamp() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        let a = bucket(&t("2024-01-01T00:00:00.000000Z"));
        let b = bucket(&t("2024-01-01T00:00:00.999999Z"));
        let c = bucket(&t("2024-01-01T00:00:01Z"));
        assert_eq!(a, b);
        assert_eq!(c - a, 1 << SLOT_BITS);
        assert_eq!(bucket(&t("1900-01-01T00:00:00Z")), 0);
        assert_eq!(bucket(&t("9999-01-01T00:00:00Z")), MAX_SECOND << SLOT_BITS);
        const { assert!((MAX_SECOND << SLOT_BITS) + SLOT_MASK > 0) };
    }
}
