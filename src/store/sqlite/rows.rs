//! Rows to domain values and back, and the queries every operation shares.
//! Runs on whichever connection the caller holds (a reader, or the writer
//! inside its transaction).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{
    domain::{
        ChatMessage, ChatSession, JsonObject, MessageId, MessageType, Node, SessionId,
        SessionSummary, Timestamp, ToolParts, Tree, UserId,
    },
    store::{ETag, Owner, StoreError, StoreResult, Versioned},
};

/// The `sessions` columns, in the order [`summary_row`] reads them.
pub(super) const SESSION_COLUMNS: &str = "id, user_id, session_name, is_active, context, \
                                          message_count, last_message_at, created_at, \
                                          updated_at, etag, archived_at, total_count";

/// The `messages` columns, in the order [`message_row`] reads them, for a
/// query `FROM messages` (unaliased). A message of the current branch
/// stored without a parent (before conversations were trees) follows the
/// one before it.
pub(super) const MESSAGE_COLUMNS: &str = "id, content, message_type, user_id, metadata, \
     created_at, tool, COALESCE(parent_id, (SELECT p.id FROM messages p \
     WHERE p.session_id = messages.session_id AND p.pos = messages.pos - 1)), edited_at";

/// A message's tool parts as the `tool` column holds them: NULL for a
/// message without any (nearly all), else their JSON object.
pub(super) fn tool_column(message_tools: &ToolParts) -> StoreResult<Option<String>> {
    if message_tools.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(message_tools)
        .map(Some)
        .map_err(|e| StoreError::Internal(e.into()))
}

/// A failed SQLite call as a store error: a storage fault by name (see
/// `storage`; an I/O error is named later, where its connection's errno can
/// be read), anything else internal.
pub(super) fn internal(e: rusqlite::Error) -> StoreError {
    super::storage::fault(&e, None)
        .unwrap_or_else(|| StoreError::Internal(anyhow::Error::new(e).context("SQLite")))
}

pub(super) fn new_etag() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Maps a stored text back to a domain value; a failure means the file was
/// changed outside this program.
fn decode<T, E: std::fmt::Display>(column: &str, value: Result<T, E>) -> rusqlite::Result<T> {
    value.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("column {column}: {e}").into(),
        )
    })
}

// Rows are decoded from the column text as SQLite holds it (`text`), not
// from owned copies: a page of sessions or messages decodes hundreds of
// columns, and only what the domain value keeps is allocated.

/// The text of column `i`, borrowed from the row.
fn text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Like [`text`], for a column that may be NULL.
fn optional_text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    match row.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => text(row, i).map(Some),
    }
}

fn json_object(column: &str, text: &str) -> rusqlite::Result<JsonObject> {
    decode(column, serde_json::from_str::<JsonObject>(text))
}

fn timestamp(column: &str, text: &str) -> rusqlite::Result<Timestamp> {
    decode(column, Timestamp::parse(text))
}

fn optional_user(column: &str, text: Option<&str>) -> rusqlite::Result<Option<UserId>> {
    text.map(|t| decode(column, UserId::parse(t))).transpose()
}

/// A session row without its etag (what a listing shows).
pub(super) fn summary_row(row: &Row<'_>) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        id: decode("id", SessionId::parse(text(row, 0)?))?,
        user_id: optional_user("user_id", optional_text(row, 1)?)?,
        session_name: optional_text(row, 2)?.map(str::to_owned),
        is_active: row.get(3)?,
        archived_at: optional_text(row, 10)?
            .map(|t| timestamp("archived_at", t))
            .transpose()?,
        context: json_object("context", text(row, 4)?)?,
        message_count: row.get(5)?,
        total_message_count: row.get(11)?,
        last_message_at: optional_text(row, 6)?
            .map(|t| timestamp("last_message_at", t))
            .transpose()?,
        created_at: timestamp("created_at", text(row, 7)?)?,
        updated_at: timestamp("updated_at", text(row, 8)?)?,
    })
}

/// A session row: the session without messages, plus its etag.
pub(super) fn session_row(row: &Row<'_>) -> rusqlite::Result<(SessionSummary, String)> {
    Ok((summary_row(row)?, row.get(9)?))
}

pub(super) fn message_row(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    let tools: ToolParts = match optional_text(row, 6)? {
        None => ToolParts::default(),
        Some(json) => decode("tool", serde_json::from_str(json))?,
    };
    Ok(ChatMessage {
        id: decode("id", MessageId::parse(text(row, 0)?))?,
        content: row.get(1)?,
        message_type: decode("message_type", MessageType::parse(text(row, 2)?))?,
        user_id: optional_user("user_id", optional_text(row, 3)?)?,
        metadata: json_object("metadata", text(row, 4)?)?,
        created_at: timestamp("created_at", text(row, 5)?)?,
        tool_calls: tools.tool_calls,
        tool_call_id: tools.tool_call_id,
        name: tools.name,
        parent_id: optional_text(row, 7)?
            .map(|t| decode("parent_id", MessageId::parse(t)))
            .transpose()?,
        edited_at: optional_text(row, 8)?
            .map(|t| timestamp("edited_at", t))
            .transpose()?,
        siblings: None,
    })
}

/// The session row if it exists and `owner` may see it.
pub(super) fn find_session(
    conn: &Connection,
    owner: &Owner,
    id: &SessionId,
) -> StoreResult<(SessionSummary, String)> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([id.as_str()], session_row).optional())
        .map_err(internal)?;
    match found {
        Some((summary, etag)) if owner.can_see(summary.user_id.as_ref()) => Ok((summary, etag)),
        _ => Err(StoreError::NotFound),
    }
}

/// What an append needs of its session: no context, name or dates it
/// does not change (decoding the context was most of reading the row, on
/// the single writer thread).
pub(super) struct AppendTarget {
    pub user_id: Option<UserId>,
    pub message_count: i64,
    pub last_message_at: Option<Timestamp>,
    pub etag: String,
}

/// [`find_session`] for an append: the same answer (not found unless
/// `owner` may see it), fewer columns.
pub(super) fn find_append_target(
    conn: &Connection,
    owner: &Owner,
    id: &SessionId,
) -> StoreResult<AppendTarget> {
    let found = conn
        .prepare_cached(
            "SELECT user_id, message_count, last_message_at, etag FROM sessions WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([id.as_str()], |row| {
                Ok(AppendTarget {
                    user_id: optional_user("user_id", optional_text(row, 0)?)?,
                    message_count: row.get(1)?,
                    last_message_at: optional_text(row, 2)?
                        .map(|t| timestamp("last_message_at", t))
                        .transpose()?,
                    etag: row.get(3)?,
                })
            })
            .optional()
        })
        .map_err(internal)?;
    match found {
        Some(target) if owner.can_see(target.user_id.as_ref()) => Ok(target),
        _ => Err(StoreError::NotFound),
    }
}

/// The current branch's messages, oldest first, their siblings marked.
pub(super) fn load_messages(
    conn: &Connection,
    session: &SessionSummary,
) -> StoreResult<Vec<ChatMessage>> {
    let mut messages = branch_messages(conn, &session.id)?;
    mark_siblings(conn, &session.id, session.has_alternatives(), &mut messages)?;
    Ok(messages)
}

/// The current branch's messages, oldest first, unmarked (for a caller
/// that holds the session's tree already and marks them itself).
pub(super) fn branch_messages(conn: &Connection, id: &SessionId) -> StoreResult<Vec<ChatMessage>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE session_id = ?1 AND pos IS NOT NULL ORDER BY pos"
        ))
        .map_err(internal)?;
    stmt.query_map([id.as_str()], message_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(internal)
}

/// Up to `limit` messages of the current branch at positions (`pos`, from
/// 1) below `below`, newest first; siblings not marked.
pub(super) fn messages_before(
    conn: &Connection,
    id: &SessionId,
    below: i64,
    limit: u32,
) -> StoreResult<Vec<ChatMessage>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages \
             WHERE session_id = ?1 AND pos < ?2 ORDER BY pos DESC LIMIT ?3"
        ))
        .map_err(internal)?;
    let messages = stmt
        .query_map(params![id.as_str(), below, limit], message_row)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(internal)?;
    Ok(messages)
}

pub(super) fn load_session(
    conn: &Connection,
    owner: &Owner,
    id: &SessionId,
) -> StoreResult<Versioned<ChatSession>> {
    let (summary, etag) = find_session(conn, owner, id)?;
    let messages = load_messages(conn, &summary)?;
    Ok(Versioned {
        value: ChatSession::from_parts(summary, messages),
        etag: ETag::new(etag),
    })
}

/// The owner's session and its version, when `if_match` (if any) still
/// matches it: how every guarded write starts.
pub(super) fn checked_session(
    conn: &Connection,
    owner: &Owner,
    id: &SessionId,
    if_match: Option<&ETag>,
) -> StoreResult<(SessionSummary, String)> {
    let (summary, etag) = find_session(conn, owner, id)?;
    check_etag(&etag, if_match)?;
    Ok((summary, etag))
}

/// Inserts one message (nothing when its id is in the session already),
/// after the session's other rows in creation order; `?2` is its position
/// on the current branch (NULL: off it), `?11` when it was edited.
pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages (session_id, seq, pos, id, content, \
     message_type, user_id, metadata, created_at, tool, parent_id, edited_at) \
     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?1), \
     ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (session_id, id) DO NOTHING";

/// The id of the current branch's last message (at position `count`).
pub(super) fn branch_last(
    tx: &rusqlite::Connection,
    id: &SessionId,
    count: i64,
) -> StoreResult<Option<String>> {
    tx.prepare_cached("SELECT id FROM messages WHERE session_id = ?1 AND pos = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![id.as_str(), count], |r| r.get(0))
                .optional()
        })
        .map_err(internal)
}

/// The stored message `message` of session `id`, on any branch.
pub(super) fn stored_message(
    tx: &rusqlite::Connection,
    id: &SessionId,
    message: &MessageId,
) -> StoreResult<Option<ChatMessage>> {
    tx.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 AND id = ?2"
    ))
    .and_then(|mut stmt| {
        stmt.query_row([id.as_str(), message.as_str()], message_row)
            .optional()
    })
    .map_err(internal)
}

pub(super) fn check_etag(stored: &str, if_match: Option<&ETag>) -> StoreResult<()> {
    match if_match {
        Some(expected) if ETag::new(stored) != *expected => Err(StoreError::PreconditionFailed),
        _ => Ok(()),
    }
}

pub(super) fn to_json(value: &JsonObject) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.into()))
}

/// The rows of one session's tree, read in one statement.
pub(super) struct TreeRows {
    /// The tree.
    pub tree: Tree,
    /// The current branch, oldest first.
    pub branch: Vec<MessageId>,
}

impl std::ops::Deref for TreeRows {
    type Target = Tree;
    fn deref(&self) -> &Tree {
        &self.tree
    }
}

/// Reads the shape of session `id`'s tree: every message's id, parent and
/// place (no content).
pub(super) fn load_tree(conn: &Connection, id: &SessionId) -> StoreResult<TreeRows> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, parent_id, pos, seq FROM messages WHERE session_id = ?1 ORDER BY seq",
        )
        .map_err(internal)?;
    let rows: Vec<(String, Option<String>, Option<i64>, i64)> = stmt
        .query_map([id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .and_then(|rows| rows.collect())
        .map_err(internal)?;
    let parse = |s: &str| MessageId::parse(s).map_err(|e| StoreError::Internal(e.into()));
    let mut branch: Vec<(i64, MessageId)> = Vec::new();
    let mut nodes = Vec::with_capacity(rows.len());
    for (message, parent, pos, seq) in &rows {
        let message = parse(message)?;
        if let Some(pos) = pos {
            branch.push((*pos, message.clone()));
        }
        nodes.push((
            message,
            parent.as_deref().map(parse).transpose()?,
            *pos,
            *seq,
        ));
    }
    branch.sort_by_key(|(pos, _)| *pos);
    let branch: Vec<MessageId> = branch.into_iter().map(|(_, m)| m).collect();
    let nodes = nodes
        .into_iter()
        .map(|(message, parent, pos, seq)| {
            // An old row on the branch states no parent: the one before it.
            let parent = parent.or_else(|| match pos {
                Some(pos) if pos > 1 => branch.get(pos as usize - 2).cloned(),
                _ => None,
            });
            Node {
                id: message,
                parent,
                order: seq as u64,
            }
        })
        .collect();
    Ok(TreeRows {
        tree: Tree::new(nodes),
        branch,
    })
}

/// Marks the siblings of `messages` (a stretch of session `id`'s current
/// branch) when the session has messages off its current branch
/// (`branched`, from its row as read with them: no read for a session
/// without any).
pub(super) fn mark_siblings(
    conn: &Connection,
    id: &SessionId,
    branched: bool,
    messages: &mut [ChatMessage],
) -> StoreResult<()> {
    if branched && !messages.is_empty() {
        load_tree(conn, id)?.tree.mark_siblings(messages);
    }
    Ok(())
}
