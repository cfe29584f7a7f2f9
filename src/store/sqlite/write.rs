//! Writes of whole sessions, each one job for the writer thread: it runs
//! inside the group's transaction and is answered once that commits.
//! Appends are in `append`. Every insert, update and delete here keeps the
//! search index in the same transaction, through the triggers of
//! `search_queue` (a session's name is indexed, and its messages go with
//! it).

use async_trait::async_trait;
use rusqlite::params;

use super::{
    SqliteStore,
    rows::{check_etag, checked_session, internal, load_session, new_etag, to_json},
};
use crate::{
    domain::{ChatSession, NewSession, SessionId, SessionPatch, Timestamp, UserId},
    store::{ETag, Owner, StoreError, StoreResult, Versioned, WriteStore},
};

/// Removes a session and everything kept for it (its messages go with it by
/// cascade), inside the caller's transaction: the one way every delete
/// (DELETE, erase, retention) removes a session's rows.
pub(super) fn delete_rows(tx: &rusqlite::Connection, id: &SessionId) -> StoreResult<()> {
    tx.execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()])
        .map_err(internal)?;
    Ok(())
}

#[async_trait]
impl WriteStore for SqliteStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<Versioned<ChatSession>> {
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

    async fn update_session(
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

    async fn delete_session(
        &self,
        owner: &Owner,
        id: &SessionId,
        if_match: Option<&ETag>,
    ) -> StoreResult<()> {
        let (owner, id, if_match) = (owner.clone(), id.clone(), if_match.cloned());
        self.write(move |tx| {
            checked_session(tx, &owner, &id, if_match.as_ref())?;
            delete_rows(tx, &id)
        })
        .await
    }
}
