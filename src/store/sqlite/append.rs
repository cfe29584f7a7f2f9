//! Appending a message: one job for the writer thread, which tries the
//! insert first (a retry or a conflict inserts nothing and is told apart by
//! the stored message), and starts a new branch when the message's parent is
//! not the current branch's last message.

use async_trait::async_trait;
use rusqlite::params;

use super::{
    SqliteStore,
    branch::set_branch,
    rows::{
        INSERT_MESSAGE, branch_last, find_append_target, internal, load_tree, new_etag,
        stored_message, to_json, tool_column,
    },
};
use crate::{
    domain::{ChatMessage, MessageId, NewMessage, SessionId, Timestamp, UserId},
    store::{AppendStore, Appended, ETag, Owner, StoreError, StoreResult, branch::unknown_message},
};

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
                .prepare_cached(INSERT_MESSAGE)
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
                        None::<String>, // edited_at: a new message is not edited
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
