//! Appending a message: one job for the writer thread, which tries the
//! insert first (a retry or a conflict inserts nothing and is told apart by
//! the stored message), and starts a new branch when the message's parent is
//! not the current branch's last message.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{
    SqliteStore,
    branch::{set_branch, unknown_message},
    rows::{
        MESSAGE_COLUMNS, find_append_target, internal, load_tree, message_row, new_etag, to_json,
        tool_column,
    },
};
use crate::{
    domain::{ChatMessage, MessageId, NewMessage, SessionId, Timestamp, UserId},
    store::{AppendStore, Appended, ETag, Owner, StoreError, StoreResult},
};

/// The id of the current branch's last message (at position `count`).
fn branch_last(
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
fn stored_message(
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

#[async_trait]
impl AppendStore for SqliteStore {
    async fn append_message(
        &self,
        owner: &Owner,
        id: &SessionId,
        mut message: NewMessage,
    ) -> StoreResult<Appended> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |tx| {
            let session = find_append_target(tx, &owner, &id)?;
            // Never let the clock run backwards inside a session: the array
            // order and the timestamps must agree.
            let now = session
                .last_message_at
                .map_or_else(Timestamp::now, |last| Timestamp::now().max(last));
            // The writer's id, or the session's owner: the row and the answer
            // say the same. Taken, not copied, on this one thread; a replay
            // compares the payload, which the user id is not part of.
            let user_id = message.user_id.take().or(session.user_id);
            let metadata = to_json(&message.metadata)?;
            let tool = tool_column(&message.tools)?;
            let last = branch_last(tx, &id, session.message_count)?;
            // A parent other than the branch's last message starts a new
            // branch there: the path to it becomes the current branch.
            let fork = message
                .parent
                .named()
                .filter(|named| named.map(MessageId::as_str) != last.as_deref());
            let (pos, parent) = match fork {
                None => (session.message_count + 1, last),
                Some(named) => {
                    if let Some(stored) = stored_message(tx, &id, &message.id)? {
                        return Appended::replay(stored, &message, ETag::new(session.etag));
                    }
                    let rows = load_tree(tx, &id)?;
                    let path = match named {
                        None => Vec::new(),
                        Some(parent) if rows.contains(parent) => rows.path_to(parent),
                        Some(parent) => return Err(unknown_message("parent_id", parent)),
                    };
                    set_branch(tx, &id, &rows, &path)?;
                    (
                        path.len() as i64 + 1,
                        path.last().map(|p| p.as_str().to_owned()),
                    )
                }
            };
            // A message id already in the session inserts nothing (and fires
            // no trigger): that is a retry or a conflict, told apart by the
            // stored message. Trying the insert first saves a fresh append
            // (nearly all of them) a lookup on the single writer thread. The
            // new row's `seq` is the session's next, so creation order holds.
            // The insert also indexes the message for search: its trigger
            // (`search_message_insert`, in `search_queue`) queues the words,
            // which the writer applies to FTS5 before this group commits.
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO messages (session_id, seq, pos, id, content, message_type, \
                     user_id, metadata, created_at, tool, parent_id) \
                     VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages \
                     WHERE session_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (session_id, id) DO NOTHING",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        id.as_str(),
                        pos,
                        message.id.as_str(),
                        message.content,
                        message.message_type.as_str(),
                        user_id.as_ref().map(UserId::as_str),
                        metadata,
                        now.to_string(),
                        tool,
                        parent,
                    ])
                })
                .map_err(internal)?;
            if inserted == 0 {
                let stored = stored_message(tx, &id, &message.id)?.ok_or_else(|| {
                    StoreError::Internal(anyhow::anyhow!("a message id conflicted and vanished"))
                })?;
                return Appended::replay(stored, &message, ETag::new(session.etag));
            }
            let parent = parent
                .map(|p| MessageId::parse(p).map_err(|e| StoreError::Internal(e.into())))
                .transpose()?;
            let stored = ChatMessage::stored(message, user_id, now, parent);
            let etag = new_etag();
            tx.prepare_cached(
                "UPDATE sessions SET message_count = ?2, total_count = total_count + 1, \
                 last_message_at = ?3, updated_at = MAX(updated_at, ?3), etag = ?4 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id.as_str(), pos, now.to_string(), etag]))
            .map_err(internal)?;
            Ok(Appended {
                message: stored,
                created: true,
                etag: ETag::new(etag),
            })
        })
        .await
    }
}
