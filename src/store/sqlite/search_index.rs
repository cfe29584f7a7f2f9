//! The search index of the embedded store: an FTS5 table of words, kept by
//! triggers in the same transaction as every write to `sessions` and
//! `messages` (appends, renames, deletes, imports, whatever code runs
//! them), so it can never disagree with the data. The triggers queue their
//! changes and the writer applies each group's in one go before committing
//! ([`super::search_queue`], which also holds the triggers).
//!
//! - `search_index` is a contentless FTS5 table (it stores no text, only
//!   the index). Each document is a message, or a session's name, written
//!   as the words [`crate::search::index_text`] sees (folded), each behind
//!   its owner's key (`§` and 8 characters from a hash of the `user_id`;
//!   `§` is never part of a word), plus the key alone. A word is thus a
//!   different token for every owner, and FTS5 expanding a prefix (merging
//!   the lists of every token that begins with it) only ever reads one
//!   owner's tokens and documents, however many other users the file
//!   holds. The `ascii` tokenizer splits exactly at the spaces between
//!   them, and prefix indexes of the key plus 1–3 characters make short
//!   prefixes (what a search-as-you-type box sends first) as quick as
//!   whole words.
//! - A document's rowid is its instant's second, shifted left by 30 bits,
//!   plus a free slot: reading the index newest first walks the owner's
//!   hits in time order, so a page stops early. A message's instant is its
//!   `created_at`; a name's is its session's `updated_at` (re-keyed when it
//!   moves to another second).
//! - `search_entries` maps each rowid to its session and message (`''` for
//!   the name), and back.
//!
//! The rules (`search_words`, `search_message_words`, `search_bucket`) are
//! Rust functions registered on every connection of the store; a connection
//! without them (the `sqlite3` shell) can read the file but not write
//! sessions or messages.

use std::collections::HashMap;

use rusqlite::{Connection, functions::FunctionFlags, params};

use crate::{
    domain::{Timestamp, ToolParts},
    search::{index_text, message_text},
    store::{StoreError, StoreResult},
};

/// Bits of a rowid below the second: the slot within it.
pub(super) const SLOT_BITS: u32 = 30;
/// The largest slot.
pub(super) const SLOT_MASK: i64 = (1 << SLOT_BITS) - 1;
/// The largest second a rowid can hold (year 2242); later instants share it.
const MAX_SECOND: i64 = (1 << (63 - SLOT_BITS)) - 1;

/// Characters of an owner key: `§` and [`KEY_CHARS`] more.
const KEY_CHARS: usize = 8;

/// The FTS5 table. Its prefix indexes are for the owner key (9 characters)
/// plus 1, 2 and 3 characters of a word.
const INDEX_TABLE: &str = r#"
CREATE VIRTUAL TABLE search_index USING fts5(
    words,
    content = '',
    contentless_delete = 1,
    detail = 'none',
    tokenize = 'ascii',
    prefix = '10 11 12'
);
"#;

/// The index's entries (the FTS5 table itself is made, and filled, by
/// [`rebuild`]; the triggers that keep both in step with the data are
/// installed by [`super::search_queue`]).
const SCHEMA: &str = r#"
CREATE TABLE search_entries (
    doc        INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    UNIQUE (session_id, message_id)
) STRICT;
"#;

/// The owner key of `user_id`: `§` and [`KEY_CHARS`] base-32 digits of a
/// 64-bit FNV-1a hash (all `0` for no owner). Every key has the same
/// length, so the prefix indexes line up; a collision only adds
/// candidates, as the owner is checked again on every hit.
pub(super) fn owner_key(user_id: Option<&str>) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let hash = user_id.map_or(0, |user| {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in user.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    });
    let mut key = String::with_capacity(2 + KEY_CHARS);
    key.push('§');
    for i in 0..KEY_CHARS {
        key.push(DIGITS[((hash >> (59 - 5 * i)) & 31) as usize] as char);
    }
    key
}

/// The tokens a document is indexed under: the owner key alone (what a
/// query without words reads), then each word behind the key.
fn document_words(user_id: Option<&str>, text: &str) -> String {
    let key = owner_key(user_id);
    let text = index_text(text);
    let mut words = String::with_capacity(text.len() * 2 + key.len());
    words.push_str(&key);
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        words.push(' ');
        words.push_str(&key);
        words.push_str(word);
    }
    words
}

/// The tokens of a message: the words of its [`message_text`], from its
/// `content` and its `tool` column (NULL for a message without tool parts).
fn message_words(
    user_id: Option<&str>,
    content: &str,
    tool: Option<&str>,
) -> serde_json::Result<String> {
    let tools: ToolParts = match tool {
        None => ToolParts::default(),
        Some(json) => serde_json::from_str(json)?,
    };
    Ok(document_words(
        user_id,
        &message_text(content, tools.function_names()),
    ))
}

/// The message's searchable text as [`super::search`] checks a hit against
/// it: the same text [`message_words`] indexed.
pub(super) fn stored_message_text(content: String, tool: Option<&str>) -> StoreResult<String> {
    let Some(json) = tool else {
        return Ok(content);
    };
    let tools: ToolParts = serde_json::from_str(json).map_err(|e| {
        StoreError::Internal(anyhow::anyhow!("a stored tool column is not valid: {e}"))
    })?;
    Ok(message_text(&content, tools.function_names()).into_owned())
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

/// Registers `search_words`, `search_message_words` and `search_bucket`,
/// which the file's triggers call, on `conn`. The store does it on every connection it opens; a tool
/// or test that writes to the file through a connection of its own must do
/// it too, or its writes to `sessions` and `messages` fail.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("search_words", 2, flags, |ctx| {
        let user: Option<String> = ctx.get(0)?;
        let text: String = ctx.get(1)?;
        Ok(document_words(user.as_deref(), &text))
    })?;
    // A message's words: its content and its tool calls' function names
    // (`tool` is the column, JSON or NULL).
    conn.create_scalar_function("search_message_words", 3, flags, |ctx| {
        let user: Option<String> = ctx.get(0)?;
        let content: String = ctx.get(1)?;
        let tool: Option<String> = ctx.get(2)?;
        message_words(user.as_deref(), &content, tool.as_deref())
            .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
    })?;
    conn.create_scalar_function("search_bucket", 1, flags, |ctx| {
        bucket_of_text(&ctx.get::<String>(0)?)
    })
}

/// The schema step that adds search: the entries (a rowid for every
/// message and named session already in the file). Later steps index their
/// words ([`rebuild`]) and install the triggers ([`super::search_queue`]);
/// the upgrade runs them all before the store serves a write.
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
    let mut sessions =
        conn.prepare("SELECT id, updated_at FROM sessions WHERE session_name IS NOT NULL")?;
    let mut rows = sessions.query([])?;
    while let Some(row) = rows.next()? {
        let (id, at): (String, String) = (row.get(0)?, row.get(1)?);
        entry.execute(params![slot(&at)?, id, ""])?;
    }
    let mut messages = conn.prepare("SELECT session_id, id, created_at FROM messages")?;
    let mut rows = messages.query([])?;
    while let Some(row) = rows.next()? {
        let (session, id, at): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        entry.execute(params![slot(&at)?, session, id])?;
    }
    Ok(())
}

/// The schema step that (re)makes the FTS5 table in the current format
/// and indexes every entry's words, in rowid order (FTS5 writes a rowid
/// lower than the last one as a segment of its own). It replaces the first
/// format, where one owner word was ANDed with words shared by every
/// owner, so that expanding a prefix read all users' documents.
///
/// It indexes messages by their content alone: it runs before the step
/// that adds the `tool` column (a file this old has no tool parts), so it
/// cannot name the column.
pub(super) fn rebuild(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("DROP TABLE IF EXISTS search_index;")?;
    conn.execute_batch(INDEX_TABLE)?;
    conn.execute(
        "INSERT INTO search_index (rowid, words) \
         SELECT e.doc, search_words(s.user_id, COALESCE(CASE WHEN e.message_id = '' \
             THEN s.session_name \
             ELSE (SELECT m.content FROM messages m \
                   WHERE m.session_id = e.session_id AND m.id = e.message_id) END, '')) \
         FROM search_entries e JOIN sessions s ON s.id = e.session_id \
         ORDER BY e.doc",
        [],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_keys_are_stable_of_one_length_and_never_words_of_text() {
        assert_eq!(owner_key(Some("user_123")), owner_key(Some("user_123")));
        assert_ne!(owner_key(Some("user_123")), owner_key(Some("user_124")));
        assert_eq!(owner_key(None), "§00000000");
        for user in [Some("a"), Some("user_123"), Some("ünïcode"), None] {
            assert_eq!(owner_key(user).chars().count(), 1 + KEY_CHARS);
        }
        assert!(!index_text("§0 §abc").contains('§'));
        let key = owner_key(Some("u"));
        assert_eq!(
            document_words(Some("u"), "Kube, PODS!"),
            format!("{key} {key}kube {key}pods")
        );
        assert_eq!(document_words(Some("u"), "--"), key);
    }

    #[test]
    fn prefix_indexes_are_the_key_and_one_to_three_characters() {
        let sizes: Vec<usize> = (1..=3).map(|n| 1 + KEY_CHARS + n).collect();
        let expected = format!("prefix = '{} {} {}'", sizes[0], sizes[1], sizes[2]);
        assert!(INDEX_TABLE.contains(&expected), "{expected}");
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
