//! Reading a whole history without holding it: an owner's sessions a page
//! at a time in creation order, and a long session's messages a chunk at a
//! time.

use futures::{StreamExt as _, TryStreamExt as _};
use rusqlite::params;

use super::{
    SqliteStore,
    rows::{MESSAGE_COLUMNS, SESSION_COLUMNS},
    rows::{find_session, internal, message_row, messages_before, session_row},
};
use crate::{
    domain::{ChatMessage, SessionId, UserId},
    store::{
        ETag, ExportStore, MessageChunks, Owner, SessionRead, StoreError, StoreResult,
        export::SummaryStream,
    },
};

/// Sessions per listing page.
const PAGE: u32 = 200;
/// Messages read at once from a long session; a session with no more than
/// this is read whole (and served from the render cache).
pub(super) const CHUNK: u32 = 2000;

impl ExportStore for SqliteStore {
    fn all_sessions(&self, owner: &Owner) -> SummaryStream {
        let store = self.clone();
        let user = owner.user_id().cloned();
        // Keyset paging on (created_at, id), which writes never change.
        futures::stream::try_unfold(Some(None), move |cursor| {
            let (store, user) = (store.clone(), user.clone());
            async move {
                let Some(after) = cursor else {
                    return Ok::<_, StoreError>(None);
                };
                let page = store.created_page(user, after).await?;
                let next = (page.len() == PAGE as usize).then(|| {
                    page.last()
                        .map(|s| (s.created_at.to_string(), s.id.clone()))
                });
                Ok(Some((
                    futures::stream::iter(page.into_iter().map(Ok)),
                    next,
                )))
            }
        })
        .try_flatten()
        .boxed()
    }
}

impl SqliteStore {
    /// Up to [`PAGE`] sessions of `user` after `after` in (created_at, id)
    /// order.
    async fn created_page(
        &self,
        user: Option<UserId>,
        after: Option<(String, SessionId)>,
    ) -> StoreResult<Vec<crate::domain::SessionSummary>> {
        self.read(move |conn| {
            let (after_created, after_id) = after.unzip();
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id IS ?1 \
                 AND (?2 IS NULL OR (created_at, id) > (?2, ?3)) \
                 ORDER BY created_at, id LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
            stmt.query_map(
                params![
                    user.as_ref().map(UserId::as_str),
                    after_created,
                    after_id.as_ref().map(SessionId::as_str),
                    PAGE,
                ],
                |row| session_row(row).map(|(summary, _)| summary),
            )
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(internal)
        })
        .await
    }

    /// The session with its newest [`CHUNK`] messages; older ones, if any,
    /// come as a stream of chunks read when polled. Positions never change
    /// (messages are only ever appended), so the chunks are exactly the
    /// messages that were there at the first read.
    pub(super) async fn read_streamed(
        &self,
        owner: &Owner,
        id: &SessionId,
        known: Option<&ETag>,
    ) -> StoreResult<Option<SessionRead>> {
        // The common case, a cached rendering still current, is one indexed
        // row read on this thread (no hop to the blocking pool).
        if let Some(known) = known
            && let Some(unchanged) = self.revalidate_inline(owner, id, known)
        {
            return unchanged.map(|_| None);
        }
        let (owner, session_id, known) = (owner.clone(), id.clone(), known.cloned());
        let first = self
            .read(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let (summary, etag) = find_session(&tx, &owner, &session_id)?;
                let etag = ETag::new(etag);
                if known.as_ref() == Some(&etag) {
                    return Ok(None);
                }
                let mut newest = messages_before(&tx, &session_id, i64::MAX, CHUNK)?;
                newest.reverse();
                tx.finish().map_err(internal)?;
                Ok(Some((summary, etag, newest)))
            })
            .await?;
        let Some((summary, etag, newest)) = first else {
            return Ok(None);
        };
        let older_count = summary.message_count.saturating_sub(newest.len() as u64);
        let older = (older_count > 0).then(|| self.chunks(id.clone(), older_count));
        Ok(Some(SessionRead {
            summary,
            etag,
            newest,
            older,
        }))
    }

    /// Messages at positions 0..`count` of session `id`, [`CHUNK`] at a
    /// time, each chunk one read when the stream gets to it.
    fn chunks(&self, id: SessionId, count: u64) -> MessageChunks {
        let store = self.clone();
        let starts = (1..=count).step_by(CHUNK as usize);
        futures::stream::iter(starts)
            .then(move |first| {
                let (store, id) = (store.clone(), id.clone());
                let last = (first + u64::from(CHUNK) - 1).min(count);
                async move { store.pos_range(id, first, last).await }
            })
            .boxed()
    }

    /// The current branch's messages at positions (`pos`) `first..=last`;
    /// all of them, or an error (the session was deleted meanwhile).
    async fn pos_range(
        &self,
        id: SessionId,
        first: u64,
        last: u64,
    ) -> StoreResult<Vec<ChatMessage>> {
        self.read(move |conn| {
            let mut messages = conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE session_id = ?1 AND pos BETWEEN ?2 AND ?3 ORDER BY pos"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map(params![id.as_str(), first as i64, last as i64], message_row)
                        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                })
                .map_err(internal)?;
            super::rows::mark_siblings(conn, &id, &mut messages)?;
            if messages.len() as u64 != last - first + 1 {
                return Err(StoreError::Internal(anyhow::anyhow!(
                    "session {id} changed while its messages were being read"
                )));
            }
            Ok(messages)
        })
        .await
    }
}
