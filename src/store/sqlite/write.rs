//! Writes, each one job for the writer thread: it runs inside the group's
//! transaction and is answered once that commits.

use rusqlite::params;

use super::{
    SqliteStore,
    rows::{
        MESSAGE_COLUMNS, check_etag, find_append_target, find_session, internal, load_session,
        message_row, new_etag, to_json, tool_column,
    },
};
use crate::{
    domain::{
        ChatMessage, ChatSession, NewMessage, NewSession, SessionId, SessionPatch, Timestamp,
        UserId,
    },
    store::{Appended, ETag, Owner, StoreError, StoreResult, Versioned},
};

/// Removes a session and everything kept for it (its messages go with it by
/// cascade), inside the caller's transaction: the one way every delete
/// (DELETE, erase, retention) removes a session's rows.
pub(super) fn delete_rows(tx: &rusqlite::Connection, id: &SessionId) -> StoreResult<()> {
    tx.execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()])
        .map_err(internal)?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn create(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
        self.write(move |tx| {
            let now = Timestamp::now();
            let etag = new_etag();
            let inserted = tx
                .execute(
                    "INSERT INTO sessions (id, user_id, session_name, is_active, context, \
                     message_count, last_message_at, created_at, updated_at, etag) \
                     VALUES (?1, ?2, ?3, 1, ?4, 0, NULL, ?5, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                    params![
                        new.id.as_str(),
                        new.user_id.as_ref().map(UserId::as_str),
                        new.session_name,
                        to_json(&new.context)?,
                        now.to_string(),
                        etag,
                    ],
                )
                .map_err(internal)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "a session with id {} already exists",
                    new.id
                )));
            }
            Ok(Versioned {
                value: new.into_session(now),
                etag: ETag::new(etag),
            })
        })
        .await
    }

    pub(super) async fn update(
        &self,
        owner: &Owner,
        id: &SessionId,
        patch: &SessionPatch,
        if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        let (owner, id, patch, if_match) =
            (owner.clone(), id.clone(), patch.clone(), if_match.cloned());
        self.write(move |tx| {
            let Versioned { mut value, etag } = load_session(tx, &owner, &id)?;
            check_etag(etag.as_str(), if_match.as_ref())?;
            patch.apply_to(&mut value, Timestamp::now());
            let etag = new_etag();
            tx.execute(
                "UPDATE sessions SET session_name = ?2, is_active = ?3, context = ?4, \
                 updated_at = ?5, etag = ?6, archived_at = ?7 WHERE id = ?1",
                params![
                    id.as_str(),
                    value.session_name,
                    value.is_active,
                    to_json(&value.context)?,
                    value.updated_at.to_string(),
                    etag,
                    value.archived_at.map(|t| t.to_string()),
                ],
            )
            .map_err(internal)?;
            Ok(Versioned {
                value,
                etag: ETag::new(etag),
            })
        })
        .await
    }

    pub(super) async fn delete(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        let (owner, id, if_match) = (owner.clone(), id.clone(), if_match.cloned());
        self.write(move |tx| {
            let (_, etag) = find_session(tx, &owner, &id)?;
            check_etag(&etag, if_match.as_ref())?;
            delete_rows(tx, &id)
        })
        .await
    }

    pub(super) async fn append(
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
            // Messages are never removed one by one, so the count is the
            // last position; a diverged count fails on the primary key
            // rather than overwrite anything. A message id already in the
            // session inserts nothing (and fires no trigger): that is a
            // retry or a conflict, told apart by the stored message. Trying
            // the insert first saves a fresh append (nearly all of them) a
            // lookup on the single writer thread.
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO messages (session_id, seq, id, content, message_type, \
                     user_id, metadata, created_at, tool) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (session_id, id) DO NOTHING",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        id.as_str(),
                        session.message_count + 1,
                        message.id.as_str(),
                        message.content,
                        message.message_type.as_str(),
                        user_id.as_ref().map(UserId::as_str),
                        metadata,
                        now.to_string(),
                        tool,
                    ])
                })
                .map_err(internal)?;
            if inserted == 0 {
                let stored = tx
                    .prepare_cached(&format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 AND id = ?2"
                    ))
                    .and_then(|mut stmt| {
                        stmt.query_row([id.as_str(), message.id.as_str()], message_row)
                    })
                    .map_err(internal)?;
                return Appended::replay(stored, &message, ETag::new(session.etag));
            }
            let stored = ChatMessage::stored(message, user_id, now);
            let etag = new_etag();
            tx.prepare_cached(
                "UPDATE sessions SET message_count = message_count + 1, last_message_at = ?2, \
                 updated_at = MAX(updated_at, ?2), etag = ?3 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id.as_str(), now.to_string(), etag]))
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
