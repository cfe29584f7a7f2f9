//! The tree operations ([`BranchStore`]) on the embedded store.
//!
//! Every message is a row of `messages`; `seq` numbers them in creation
//! order (so a child always comes after its parent) and `pos` gives the
//! current branch's messages their positions, 1 to `message_count`, and is
//! NULL for every other message. Reads that know nothing of branches read
//! the rows with a `pos`, as they always read every row. Making another
//! branch current rewrites `pos` (and writes out the parent of each row
//! leaving the branch, which an old row may only imply) in the writer's
//! transaction. Every check runs before the first row changes: a refused
//! write leaves the group's transaction as it found it.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqliteStore,
    connection::has_column,
    rows::{
        MESSAGE_COLUMNS, TreeRows, branch_last, branch_messages, checked_session, find_session,
        internal, load_tree, message_row, new_etag, stored_message, to_json,
    },
};
use crate::{
    domain::{
        ChatMessage, ChatSession, DeleteScope, MessageEdit, MessageId, SessionId, SessionSummary,
        Timestamp,
    },
    store::{
        BranchStore, ETag, Owner, StoreError, StoreResult, TreePage, TreeQuery, Versioned,
        branch::unknown_message,
    },
};

/// Upgrade step: messages get `parent_id` (NULL: the one before it, as
/// every message stored earlier), `pos` (every stored message is on the
/// current branch) and `edited_at`; sessions count every message. Each
/// part only where the file lacks it, so a step run again changes nothing.
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    let has = |table, column| has_column(conn, table, column);
    for column in ["parent_id", "edited_at"] {
        if !has("messages", column)? {
            conn.execute_batch(&format!("ALTER TABLE messages ADD COLUMN {column} TEXT"))?;
        }
    }
    if !has("messages", "pos")? {
        conn.execute_batch(
            "ALTER TABLE messages ADD COLUMN pos INTEGER; UPDATE messages SET pos = seq;",
        )?;
    }
    conn.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_pos ON messages (session_id, pos) \
         WHERE pos IS NOT NULL",
    )?;
    if !has("sessions", "total_count")? {
        conn.execute_batch(
            "ALTER TABLE sessions ADD COLUMN total_count INTEGER NOT NULL DEFAULT 0; \
             UPDATE sessions SET total_count = message_count;",
        )?;
    }
    Ok(())
}

/// Makes `new` the current branch in place of `rows.branch`: rows leaving
/// it lose their `pos` and get their parent written out, rows joining it
/// (or moving along it) get theirs. Positions are cleared before they are
/// set, so the unique index never sees two rows at one position.
pub(super) fn set_branch(
    tx: &Connection,
    id: &SessionId,
    rows: &TreeRows,
    new: &[MessageId],
) -> StoreResult<()> {
    let common = rows
        .branch
        .iter()
        .zip(new)
        .take_while(|(a, b)| a == b)
        .count();
    let mut leave = tx
        .prepare_cached(
            "UPDATE messages SET pos = NULL, parent_id = ?3 WHERE session_id = ?1 AND id = ?2",
        )
        .map_err(internal)?;
    for message in &rows.branch[common..] {
        let parent = rows.tree.parent(message).map(MessageId::as_str);
        leave
            .execute(params![id.as_str(), message.as_str(), parent])
            .map_err(internal)?;
    }
    let mut join = tx
        .prepare_cached(
            "UPDATE messages SET pos = ?3, parent_id = ?4 WHERE session_id = ?1 AND id = ?2",
        )
        .map_err(internal)?;
    for (at, message) in new.iter().enumerate().skip(common) {
        let parent = rows.tree.parent(message).map(MessageId::as_str);
        join.execute(params![
            id.as_str(),
            message.as_str(),
            at as i64 + 1,
            parent
        ])
        .map_err(internal)?;
    }
    Ok(())
}

/// The `created_at` of the current branch's last message.
fn branch_end(tx: &Connection, id: &SessionId, count: usize) -> StoreResult<Option<String>> {
    tx.prepare_cached("SELECT created_at FROM messages WHERE session_id = ?1 AND pos = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![id.as_str(), count as i64], |r| r.get(0))
                .optional()
        })
        .map_err(internal)
}

/// Records a change of the current branch (and of the count of every
/// message, `total`) on the session row; returns the new version.
fn touch_session(
    tx: &Connection,
    id: &SessionId,
    count: usize,
    total: usize,
) -> StoreResult<String> {
    let etag = new_etag();
    let last = branch_end(tx, id, count)?;
    tx.prepare_cached(
        "UPDATE sessions SET message_count = ?2, total_count = ?3, last_message_at = ?4, \
         updated_at = MAX(updated_at, ?5), etag = ?6 WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id.as_str(),
            count as i64,
            total as i64,
            last,
            Timestamp::now().to_string(),
            etag
        ])
    })
    .map_err(internal)?;
    Ok(etag)
}

/// The session (`summary` at version `etag`, as just read) showing
/// `branch`, its siblings marked.
fn session_with_branch(
    conn: &Connection,
    (mut summary, etag): (SessionSummary, String),
    rows: &TreeRows,
    branch: &[MessageId],
) -> StoreResult<Versioned<ChatSession>> {
    let id = summary.id.clone();
    let mut messages = if branch == rows.branch.as_slice() {
        // Marked below, with the tree in hand.
        branch_messages(conn, &id)?
    } else {
        let mut by_id: std::collections::HashMap<MessageId, ChatMessage> =
            messages_by_id(conn, &id, branch)?
                .into_iter()
                .map(|m| (m.id.clone(), m))
                .collect();
        let mut out = Vec::with_capacity(branch.len());
        for message in branch {
            let mut found = by_id.remove(message).ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("message {message} vanished mid-read"))
            })?;
            found.parent_id = rows.tree.parent(message).cloned();
            out.push(found);
        }
        out
    };
    rows.tree.mark_siblings(&mut messages);
    summary.message_count = messages.len() as u64;
    summary.last_message_at = messages.last().map(|m| m.created_at);
    Ok(Versioned {
        value: ChatSession::from_parts(summary, messages),
        etag: ETag::new(etag),
    })
}

/// The messages of session `id` named in `ids`, in no particular order.
fn messages_by_id(
    conn: &Connection,
    id: &SessionId,
    ids: &[MessageId],
) -> StoreResult<Vec<ChatMessage>> {
    let ids = serde_json::to_string(ids).map_err(|e| StoreError::Internal(e.into()))?;
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 \
         AND id IN (SELECT value FROM json_each(?2))"
    ))
    .and_then(|mut stmt| {
        stmt.query_map(params![id.as_str(), ids], message_row)
            .and_then(|rows| rows.collect())
    })
    .map_err(internal)
}

#[async_trait]
impl BranchStore for SqliteStore {
    async fn read_branch(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
    ) -> StoreResult<Versioned<ChatSession>> {
        let (owner, id, message) = (owner.clone(), id.clone(), message.clone());
        self.read(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let session = find_session(&tx, &owner, &id)?;
            let rows = load_tree(&tx, &id)?;
            if !rows.tree.contains(&message) {
                return Err(unknown_message("message_id", &message));
            }
            let branch = rows.tree.branch_through(&message);
            let read = session_with_branch(&tx, session, &rows, &branch)?;
            tx.finish().map_err(internal)?;
            Ok(read)
        })
        .await
    }

    async fn switch_branch(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let (owner, id, message, if_match) = (
            owner.clone(),
            id.clone(),
            message.clone(),
            if_match.cloned(),
        );
        self.write(move |tx| {
            let mut session = checked_session(tx, &owner, &id, if_match.as_ref())?;
            let rows = load_tree(tx, &id)?;
            if !rows.tree.contains(&message) {
                return Err(unknown_message("current_message_id", &message));
            }
            let branch = rows.tree.branch_through(&message);
            if branch != rows.branch {
                set_branch(tx, &id, &rows, &branch)?;
                touch_session(tx, &id, branch.len(), rows.tree.len())?;
                session = find_session(tx, &owner, &id)?;
            }
            // The tree is the one read above; only its current branch moved.
            let rows = TreeRows {
                tree: rows.tree,
                branch,
            };
            session_with_branch(tx, session, &rows, &rows.branch)
        })
        .await
    }

    async fn list_tree(
        &self,
        owner: &Owner,
        id: &SessionId,
        query: TreeQuery,
    ) -> StoreResult<TreePage> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            let (summary, etag) = find_session(&tx, &owner, &id)?;
            let limit = query.limit.clamp(1, 1000);
            let mut messages: Vec<(i64, ChatMessage)> = tx
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS}, seq FROM messages \
                     WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(
                        params![id.as_str(), query.after as i64, i64::from(limit) + 1],
                        |row| Ok((row.get(9)?, message_row(row)?)),
                    )
                    .and_then(|rows| rows.collect())
                })
                .map_err(internal)?;
            let more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            let next_after = more
                .then(|| messages.last().map(|(s, _)| *s as u64))
                .flatten();
            let current = branch_last(&tx, &id, summary.message_count as i64)?
                .map(|m| MessageId::parse(m).map_err(|e| StoreError::Internal(e.into())))
                .transpose()?;
            tx.finish().map_err(internal)?;
            Ok(TreePage {
                messages: messages.into_iter().map(|(_, m)| m).collect(),
                current_message_id: current,
                next_after,
                etag: ETag::new(etag),
            })
        })
        .await
    }

    async fn edit_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        edit: &MessageEdit,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatMessage>> {
        let (owner, id, message, edit, if_match) = (
            owner.clone(),
            id.clone(),
            message.clone(),
            edit.clone(),
            if_match.cloned(),
        );
        self.write(move |tx| {
            checked_session(tx, &owner, &id, if_match.as_ref())?;
            let mut stored =
                stored_message(tx, &id, &message)?.ok_or(StoreError::MessageNotFound)?;
            let now = Timestamp::now();
            edit.apply_to(&mut stored, now)?;
            let metadata = to_json(&stored.metadata)?;
            tx.prepare_cached(
                "UPDATE messages SET content = ?3, metadata = ?4, edited_at = ?5 \
                 WHERE session_id = ?1 AND id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id.as_str(),
                    message.as_str(),
                    stored.content,
                    metadata,
                    now.to_string()
                ])
            })
            .map_err(internal)?;
            let etag = new_etag();
            tx.prepare_cached(
                "UPDATE sessions SET updated_at = MAX(updated_at, ?2), etag = ?3 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id.as_str(), now.to_string(), etag]))
            .map_err(internal)?;
            Ok(Versioned {
                value: stored,
                etag: ETag::new(etag),
            })
        })
        .await
    }

    async fn delete_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        message: &MessageId,
        scope: DeleteScope,
        if_match: Option<&ETag>,
    ) -> StoreResult<ETag> {
        let (owner, id, message, if_match) = (
            owner.clone(),
            id.clone(),
            message.clone(),
            if_match.cloned(),
        );
        self.write(move |tx| {
            checked_session(tx, &owner, &id, if_match.as_ref())?;
            let rows = load_tree(tx, &id)?;
            if !rows.tree.contains(&message) {
                return Err(StoreError::MessageNotFound);
            }
            let parent = rows.tree.parent(&message).cloned();
            let gone = match scope {
                DeleteScope::Message => vec![message.clone()],
                DeleteScope::Subtree => rows.tree.subtree(&message),
            };
            // The current branch without what goes: the deleted message's
            // child on it (if it stays) now follows its parent.
            let at = rows.branch.iter().position(|m| *m == message);
            let branch: Vec<MessageId> = match at {
                Some(at) if scope == DeleteScope::Subtree => rows.branch[..at].to_vec(),
                _ => rows
                    .branch
                    .iter()
                    .filter(|m| **m != message)
                    .cloned()
                    .collect(),
            };
            // The branch from the deleted message on leaves it first (its
            // parents written out), then the rows go, then what stays
            // comes back at its new positions.
            let kept = &rows.branch[..at.unwrap_or(rows.branch.len())];
            set_branch(tx, &id, &rows, kept)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM messages WHERE session_id = ?1 AND id = ?2")
                .map_err(internal)?;
            for m in &gone {
                delete
                    .execute(params![id.as_str(), m.as_str()])
                    .map_err(internal)?;
            }
            if scope == DeleteScope::Message {
                tx.prepare_cached(
                    "UPDATE messages SET parent_id = ?3 WHERE session_id = ?1 AND parent_id = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        id.as_str(),
                        message.as_str(),
                        parent.as_ref().map(MessageId::as_str)
                    ])
                })
                .map_err(internal)?;
            }
            // Their parents are written out already (by leaving the branch,
            // then the re-attachment), so only positions are left to set.
            let mut place = tx
                .prepare_cached("UPDATE messages SET pos = ?3 WHERE session_id = ?1 AND id = ?2")
                .map_err(internal)?;
            for (at, m) in branch.iter().enumerate().skip(kept.len()) {
                place
                    .execute(params![id.as_str(), m.as_str(), at as i64 + 1])
                    .map_err(internal)?;
            }
            let etag = touch_session(tx, &id, branch.len(), rows.tree.len() - gone.len())?;
            Ok(ETag::new(etag))
        })
        .await
    }
}
